"""The in-pod entrypoint of dok: a Dask scheduler in the job pod, worker pods via SpecCluster + Adaptive.

`python -m dok.runner /opt/dok/flow.dokflow` (the image's entrypoint) or `dok.runner.run(env, path)` (behind
`DaskOnKubernetesEnvironment.run(path)`). See `dok.runner.run` for the lifecycle and exit codes,
`dok.runner.backend` for the seam through which workers are obtained.
"""

from __future__ import annotations

from dok.runner.exceptions import RunnerError
from dok.runner.run import RunOutcome, execute, run

__all__ = ["run", "execute", "RunOutcome", "RunnerError"]
