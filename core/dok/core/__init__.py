"""dok.core: the flow model, States, the engine that runs a flow on Dask, flow bundles, environment spec."""
