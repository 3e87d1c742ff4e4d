"""Shared fixtures: one small in-process Dask cluster per test session (threads, no processes)."""

from __future__ import annotations

import os
import sys

import pytest
from hypothesis import HealthCheck, settings

# Tests share two slow CPUs with other work: no per-example deadline, no "too slow" health check.
settings.register_profile("dok", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("dok")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # `import helpers` under --import-mode=importlib


@pytest.fixture(scope="session")
def dask_client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=2, processes=False, dashboard_address=":0") as cluster:
        with Client(cluster, set_as_default=False) as client:
            yield client
