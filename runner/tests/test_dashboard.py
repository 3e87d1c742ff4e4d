"""The scheduler's dashboard options: where it listens, off when the run says so, and that a scheduler started
with them serves bokeh's /status page (and without them, no dashboard routes)."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request

from distributed import Scheduler

from dok.core.names import DASHBOARD_PORT
from dok.runner.cluster import dashboard_address, scheduler_options


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_address_defaults_to_the_job_containers_dashboard_port():
    assert dashboard_address(enabled=True) == f"0.0.0.0:{DASHBOARD_PORT}"
    assert dashboard_address(enabled=True, host="127.0.0.1", port=9999) == "127.0.0.1:9999"
    assert dashboard_address(enabled=True, host="::", port=8787) == "[::]:8787"
    assert dashboard_address(enabled=False) is None


def test_scheduler_options_turn_the_dashboard_on_at_the_given_address():
    options = scheduler_options(host="0.0.0.0", port=8786, contact_address="tcp://10.0.0.5:8786",
                                dashboard="0.0.0.0:8787")
    assert options["dashboard"] is False  # its pages are attached once the scheduler runs (attach_dashboard)
    assert options["dashboard_address"] == "0.0.0.0:8787"
    assert options["contact_address"] == "tcp://10.0.0.5:8786"
    assert (options["host"], options["port"]) == ("0.0.0.0", 8786)


def test_scheduler_options_without_dashboard_keep_it_off_on_a_free_port():
    options = scheduler_options(host="0.0.0.0", port=8786, contact_address="tcp://10.0.0.5:8786", dashboard=None)
    assert options["dashboard"] is False
    assert options["dashboard_address"] == ":0"  # never takes 8787 from anything else


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


async def _serve_and_get(dashboard: str | None, path: str) -> tuple[int | None, int, str]:
    options = scheduler_options(host="127.0.0.1", port=0, contact_address="", dashboard=dashboard)
    options.pop("contact_address")
    async with Scheduler(**options) as scheduler:
        port = scheduler.http_server.port
        status, body = await asyncio.get_running_loop().run_in_executor(
            None, _get, f"http://127.0.0.1:{port}{path}")
        return port, status, body


def test_a_scheduler_with_these_options_listens_at_once_and_serves_bokehs_status_page_a_moment_later():
    port = _free_port()
    bound, status, _ = asyncio.run(_serve_and_get(f"127.0.0.1:{port}", "/health"))
    assert (bound, status) == (port, 200)
    status, body, waited = asyncio.run(_cluster_status_page())
    assert status == 200, waited
    assert "Bokeh" in body or "bokeh" in body, body[:500]
    assert "Dask" in body, body[:500]
    assert waited >= 0.9  # not loaded while the run gets going (DASHBOARD_DELAY)


def test_a_scheduler_without_the_dashboard_has_no_status_page():
    _, status, _ = asyncio.run(_serve_and_get(None, "/status"))
    assert status == 404


class IdleBackend:
    """No workers are asked for: only the supervisor's observe() is called."""

    description = "idle"

    async def observe(self) -> list:
        return []

    def new_name(self) -> str:
        return "unused"


async def _cluster_dashboard_port(dashboard: str | None) -> int | None:
    import io

    from dok.runner.cluster import DokCluster
    from dok.runner.health import HealthPolicy
    from dok.runner.monitor import RunMonitor

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    async with DokCluster(backend=IdleBackend(), monitor=RunMonitor(stream=io.StringIO()),  # type: ignore[arg-type]
                          policy=HealthPolicy(start_timeout=30, failure_budget=1, scheduler_address=address),
                          contact_address=address, host="127.0.0.1", port=port, watch_interval=0.2,
                          dashboard=dashboard, asynchronous=True) as cluster:
        return cluster.dashboard_port


async def _cluster_status_page() -> tuple[int, str, float]:
    import io
    import time

    from dok.runner.cluster import DokCluster
    from dok.runner.health import HealthPolicy
    from dok.runner.monitor import RunMonitor

    port, web = _free_port(), _free_port()
    address = f"tcp://127.0.0.1:{port}"
    async with DokCluster(backend=IdleBackend(), monitor=RunMonitor(stream=io.StringIO()),  # type: ignore[arg-type]
                          policy=HealthPolicy(start_timeout=30, failure_budget=1, scheduler_address=address),
                          contact_address=address, host="127.0.0.1", port=port, watch_interval=0.2,
                          dashboard=f"127.0.0.1:{web}", asynchronous=True):
        t0 = time.monotonic()
        loop = asyncio.get_running_loop()
        status, body = 0, ""
        while time.monotonic() - t0 < 20:
            status, body = await loop.run_in_executor(None, _get, f"http://127.0.0.1:{web}/status")
            if status == 200:
                break
            await asyncio.sleep(0.1)
        return status, body, time.monotonic() - t0


def test_the_cluster_reports_its_dashboard_port_only_when_it_serves_one():
    port = _free_port()
    assert asyncio.run(_cluster_dashboard_port(f"127.0.0.1:{port}")) == port
    assert asyncio.run(_cluster_dashboard_port(None)) is None
