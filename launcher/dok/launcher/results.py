"""Getting a run's full results back (the payload is `dok.core.results`'s): from the result store, or picked
up from the job pod over a port-forward.

- `pickup_timeout(...)`: the pure decision whether the runner should wait for a pick-up, and how long: only
  for a run the caller waits for (not detached) that has no result location.
- `check_pickup_allowed(kube, namespace)`: the caller's RBAC for `pods/portforward`, asked before the Job is
  created, so a missing right is a clear error (exit 2) and nothing is left half-created.
- `ResultPickup`: a background thread started when the caller begins to wait: once the job pod is on a node, it
  forwards a local port to the runner's loopback pick-up server (`dok.kube.PortForward`) and long-polls
  `GET /result` until the runner offers the payload; `RunHandle.wait()` then returns the State it carries,
  as soon as it arrives (it carries the runner's exit code: no need to wait for the container's status).
- `write_output(path, state)`: `--output FILE`, the flow's result pickled with cloudpickle.
- `read_stored(location, identifier)`: the payload from `<location>/<identifier>/result.pkl` (fsspec; the
  caller's own credentials, e.g. AWS_* variables), for `dok result ID` and `RunHandle.result()`;
  `location_of(job)`: the result location a run was started with, read from its Job.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from dok.core.results import (RESULT_PATH, RESULT_PORT, ResultPayload, ResultPayloadError, decode_payload,
                              result_urls)
from dok.core.runspec import env_var
from dok.kube import Access, PortForward

from .exceptions import PermissionDenied, ResultsNotFound

__all__ = ["DEFAULT_PICKUP_TIMEOUT", "ResultPickup", "check_pickup_allowed", "location_of", "pickup_timeout",
           "read_stored", "write_output"]

DEFAULT_PICKUP_TIMEOUT = 120.0  # seconds the runner of an attached run waits for the pick-up
LONG_POLL = 20.0                # seconds one GET waits for the payload before asking again
MAX_RETRY_WAIT = 1.0            # seconds between connection attempts at most (they back off up to this)
FAST_ATTEMPTS = 12              # attempts `poll` apart before backing off (a failing one takes ~0.5 s: ~9 s)


def pickup_timeout(*, result_location: str | None, detach: bool, requested: float | None = None) -> float | None:
    """How long the runner should wait for the caller to pick the results up: None (no pick-up) for a detached
    run or one with a result location (its results are in the store), else `requested` or the default."""
    if detach or result_location is not None:
        return None
    return requested if requested is not None else DEFAULT_PICKUP_TIMEOUT


def check_pickup_allowed(kube: Any, namespace: str) -> None:
    """PermissionDenied (exit 2) when the caller may not port-forward to pods in `namespace`."""
    access = Access(verb="create", resource="pods", subresource="portforward", namespace=namespace)
    allowed, reason = kube.can_i(access)
    if not allowed:
        raise PermissionDenied(f"you may not {access}" + (f" ({reason})" if reason else "") + ": the results "
                              "cannot be fetched from the job pod",
                              hint=f"ask a cluster admin for 'create' on 'pods/portforward' in namespace {namespace}, "
                                   "or keep the results in a store: --results s3://bucket/prefix "
                                   "(result_location=...), read back with `dok result ID`")


def location_of(job: Mapping[str, Any] | None) -> str | None:
    """DOK_RESULT_LOCATION of the Job's first container (how the run was started), else None."""
    if not job:
        return None
    containers = (((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    for container in containers[:1]:
        for item in container.get("env") or []:
            if item.get("name") == env_var("result_location") and item.get("value"):
                return str(item["value"])
    return None


def read_stored(location: str, identifier: str, *, opener: Callable[..., Any] | None = None) -> ResultPayload:
    """The run's payload from the store; ResultsNotFound (exit 2) when it is not there (yet), naming the URL."""
    if opener is None:
        import fsspec

        opener = fsspec.open
    url = result_urls(location, identifier).payload
    try:
        with opener(url, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ResultsNotFound(f"no results of run {identifier} at {url}",
                              hint="the run may still be running or failed before writing them (see `dok status "
                                   f"{identifier}` and `dok logs {identifier}`), or it wrote to another location "
                                   "(--results URL)") from None
    except ImportError as exc:
        raise ResultsNotFound(f"cannot read {url}: {exc}",
                              hint="install the fsspec backend of the URL's scheme (e.g. pip install s3fs)") from None
    except Exception as exc:  # noqa: BLE001 - credentials, endpoint, network: named with the URL
        raise ResultsNotFound(f"cannot read {url}: {type(exc).__name__}: {exc}",
                              hint="check your credentials and endpoint for the store (e.g. AWS_ACCESS_KEY_ID, "
                                   "AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL)", exit_code=3) from None
    return decode_payload(data)


def write_output(path: str, state: Any) -> int:
    """`--output FILE`: the flow's result (`state.result`, the dict of reference tasks' results) pickled with
    cloudpickle; returns the number of bytes written."""
    import cloudpickle

    data = cloudpickle.dumps(state.result)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


class ResultPickup:
    """Fetch the payload from the job pod while the caller waits (see the module docstring).

    `job_pod()` returns the name of the job pod once it is Running (None before); `forward(pod)` returns a
    started port-forward with `.url(path)` and `.close()` (a `dok.kube.PortForward` by default)."""

    def __init__(self, *, kube: Any, namespace: str, job_pod: Callable[[], str | None],
                 forward: Callable[[str], Any] | None = None, poll: float = 0.25) -> None:
        self.kube = kube
        self.namespace = namespace
        self.job_pod = job_pod
        self.forward = forward or self._port_forward
        self.poll = poll
        self.payload: ResultPayload | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._downloading = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dok-result-pickup", daemon=True)

    def start(self) -> ResultPickup:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def arrived(self, timeout: float) -> bool:
        """Wait at most `timeout` s for the payload; True once it is here (the run's outcome is known). A
        pick-up that ended without one sleeps the whole `timeout` (the caller polls the pod instead)."""
        if self._done.is_set() and self.payload is None:
            time.sleep(timeout)
            return False
        self._done.wait(timeout)
        return self.payload is not None

    def result(self, timeout: float) -> ResultPayload | None:
        """The payload once picked up (waiting at most `timeout` s for a download under way, a moment
        otherwise), else None."""
        if self.payload is None:
            self._done.wait(timeout if self._downloading.is_set() else min(timeout, 2.0))
            if self._downloading.is_set():
                self._done.wait(timeout)
        return self.payload

    def _port_forward(self, pod: str) -> Any:
        # No phase check: the job pod may still read Pending while its container already runs (the caller's
        # right to port-forward was checked before the Job was created).
        return PortForward(self.kube, namespace=self.namespace, pod=pod, port=RESULT_PORT, check=False,
                           quiet=True).start()

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                pod = self.job_pod()
                if pod is None:
                    self._stop.wait(self.poll)
                    continue
                if self._fetch_from(pod):
                    return
                failures += 1  # e.g. the container is not started yet: soon again, then less often
                slow = max(0, failures - FAST_ATTEMPTS)
                self._stop.wait(min(MAX_RETRY_WAIT, self.poll * (1.5 ** min(slow, 10))))
        finally:
            self._done.set()

    def _fetch_from(self, pod: str) -> bool:
        try:
            fwd = self.forward(pod)
        except Exception as exc:  # noqa: BLE001 - the pod ended or is not there yet: ask again
            self.error = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
            return False
        try:
            while not self._stop.is_set():
                with urllib.request.urlopen(fwd.url(f"{RESULT_PATH}?wait={LONG_POLL:g}"),
                                            timeout=LONG_POLL + 30) as reply:
                    if reply.status == 200:
                        self._downloading.set()
                        self.payload = decode_payload(reply.read())
                        return True
        except ResultPayloadError as exc:
            self.error = exc.message
            return True  # a broken payload will not get better
        except (OSError, urllib.error.URLError, ValueError) as exc:  # the stream ended: retry while waiting
            self.error = f"{type(exc).__name__}: {exc}"
            time.sleep(0)
        finally:
            fwd.close()
        return False
