"""e2e + browser (results/dashboard issue): the job pod's scheduler serves Dask's dashboard and it is reachable
from this machine only through the API server.

During a run of a flow that lasts about a minute, `dok run --dashboard` prints the link; headless Chromium
opens the forwarded /status page: its DOM is Dask's page with bokeh's embedded roots, bokeh draws its plots
(canvases in the rendered views, the "Task Stream" figure in the document) and a screenshot PNG is kept as
a test artifact (Bazel's TEST_UNDECLARED_OUTPUTS_DIR, i.e. the target's outputs.zip). `dok dashboard ID`
prints its URL as the first line and serves the same page. Once the run has finished (kept with --keep) and
for an unknown identifier, `dok dashboard ID` is a clear error with exit 2, not a hang.

Needs the Debian package chromium (`apt-get install chromium`; .ci/run installs it): without it the tests fail
saying so.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from e2e import helpers, helpers_browser
from e2e.reliability_flows import Background, dok, dok_env, flow_file

LONG_FLOW = '''
from dok.core import Flow, task

@task
def numbers(n):
    return list(range(n))

@task
def nap(i):
    import time
    time.sleep(4)
    return i

@task
def total(xs):
    return sum(xs)

with Flow("e2e-dashboard") as flow:
    total(nap.map(numbers(16)))    # ~1 minute on one single-threaded worker
'''

LINK = re.compile(r"\[dok\] dashboard: (http://127\.0\.0\.1:\d+/status)")
CANVASES = """(() => { let n = 0; const walk = (root) => { for (const e of root.querySelectorAll("*")) {
    if (e.tagName === "CANVAS") n++; if (e.shadowRoot) walk(e.shadowRoot); } }; walk(document); return n; })()"""
FIGURE_TITLES = "Bokeh.documents.flatMap(d => d.roots()).map(r => (r.title && r.title.text) || '')"


@pytest.fixture(scope="session", autouse=True)
def chromium_installed() -> str:
    """The browser these tests drive. Without it they fail (not skip) saying how to install it."""
    path = helpers_browser.chromium()
    if path is None:
        pytest.fail(helpers_browser.MISSING_CHROMIUM, pytrace=False)
    return path


def test_dashboard_in_a_browser_during_a_run_and_clear_errors_after(cluster, namespace, tmp_path):
    artifacts = helpers_browser.artifact_dir(tmp_path / "artifacts")
    run = Background(cluster, "run", flow_file(tmp_path, LONG_FLOW), "-n", namespace, "--dashboard", "--keep",
                     "--max-workers", "1")
    try:
        identifier = run.wait_identifier(timeout=900)  # the first build of this image installs bokeh

        def link() -> str | None:
            if run.proc.poll() is not None:
                raise AssertionError(f"dok run ended before printing the dashboard link:\n{run.stderr}")
            match = LINK.search(run.stderr)
            return match.group(1) if match else None

        url = helpers.wait_for("the dashboard link in dok run's output", link, timeout=300, interval=1)

        dom = helpers_browser.dump_dom(url, profile=tmp_path / "profile-dom")
        (artifacts / "dashboard-status.html").write_text(dom)
        assert "<title>Dask Diagnostic UI</title>" in dom, dom[:2000]
        assert "static/js/bokeh.min.js" in dom and dom.count("data-root-id=") >= 3, dom[:2000]

        with helpers_browser.DevTools(tmp_path / "profile-shot") as browser:
            page = browser.page(url)
            assert page.wait_for("document.readyState === 'complete' && window.Bokeh && Bokeh.documents.length")
            assert page.wait_for("document.title === 'Dask: Status'")  # set by bokeh from the document
            assert page.wait_for(CANVASES) >= 3  # bokeh drew its plots (in its views' shadow DOM)
            titles = page.evaluate(FIGURE_TITLES)
            assert "Task Stream" in titles, titles
            # the run's own tasks: "Progress -- total: 34, waiting: 9, queued: 7, processing: 2, in-memory: 16, …"
            progress = next((t for t in titles if t.startswith("Progress")), "")
            total = re.search(r"total: (\d+)", progress)
            assert total and int(total.group(1)) > 0, titles
            time.sleep(2)  # let the task stream fill in
            png = page.screenshot()
            page.close()
        (artifacts / "dashboard-status.png").write_bytes(png)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(png) > 20_000, len(png)  # the page with its plots drawn, not a blank or a bare navbar

        # `dok dashboard ID` while the run goes: URL first, the same dashboard behind it.
        forward = subprocess.Popen([sys.executable, "-m", "dok.launcher", "dashboard", identifier, "-n", namespace,
                                    "--port", "0"], env=dok_env(cluster), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        try:
            first = forward.stdout.readline().strip()  # type: ignore[union-attr]
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/status", first), (first, forward.stderr.read())  # type: ignore[union-attr]
            with urllib.request.urlopen(first, timeout=60) as response:
                body = response.read().decode()
            assert response.status == 200 and "Dask Diagnostic UI" in body and "bokeh.min.js" in body
        finally:
            forward.terminate()
            forward.wait(timeout=30)

        assert run.finish(timeout=600) == 0, run.stderr
    finally:
        run.kill()

    # The run is over (its Job and job pod kept by --keep): no dashboard any more, said clearly.
    started = time.monotonic()
    finished = dok(cluster, "dashboard", identifier, "-n", namespace, timeout=120)
    assert finished.returncode == 2, finished.stderr
    assert f"run {identifier} has finished" in finished.stderr and "dok status" in finished.stderr
    assert finished.stdout == "" and time.monotonic() - started < 60
    assert dok(cluster, "cleanup", identifier, "-n", namespace, timeout=120).returncode == 0


def test_dashboard_of_an_unknown_run_is_a_clear_error(cluster, namespace):
    unknown = str(uuid.uuid4())
    proc = dok(cluster, "dashboard", unknown, "-n", namespace, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert f"no run with identifier {unknown!r}" in proc.stderr and "dok list" in proc.stderr
    assert proc.stdout == ""
