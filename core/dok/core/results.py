"""A run's full results as bytes and where they live: pure functions, no I/O.

The runner hands the flow's final State to the caller in one of two ways, both carrying the same payload:

- written to a *result location* (`result_location` / `dok run --results URL`, any fsspec URL such as
  `s3://bucket/prefix`, `gs://…`, `file:///mnt/shared/…`) as two objects under `<location>/<identifier>/`:
  `result.pkl` (the payload) and `state.json` (the State as JSON, for people and other tools);
- picked up by an attached `dok run` / `RunHandle.wait()` over a port-forward to the job pod.

    data = encode_payload(state, identifier="0f8f…")      # bytes: a magic header + cloudpickle
    payload = decode_payload(data)                         # ResultPayload(identifier, state, exit_code)
    text = state_document(state, identifier="0f8f…")       # JSON text
    urls = result_urls("s3://bucket/runs", "0f8f…")        # ResultUrls(payload=…/result.pkl, state=…/state.json)
    check_result_location("s3://bucket/runs")              # normalised URL, or ResultLocationError
    backend_packages("s3://bucket/runs")                   # ("s3fs",): what the image needs for the scheme

The payload is the State itself (reference tasks' results in `.result`, every task's State with its result,
error and traceback in `.task_states`), pickled with cloudpickle, so any value the flow returns comes back as
the same Python object. A result that cannot be pickled does not lose the run: `encode_payload` replaces it
by its `repr` and names it in `ResultPayload.unpicklable`. The runner's exit code travels with it (`exit_code`:
0, 1 or 3, None in payloads written before it existed), so a caller holding the payload knows the run's whole
outcome without waiting for the job container's status.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any

import cloudpickle

from .exceptions import DokError, EnvironmentConfigError
from .states import State

__all__ = [
    "PAYLOAD_MAGIC",
    "PAYLOAD_NAME",
    "RESULT_PATH",
    "RESULT_PORT",
    "STATE_NAME",
    "ResultLocationError",
    "ResultPayload",
    "ResultPayloadError",
    "ResultUrls",
    "backend_packages",
    "check_result_location",
    "decode_payload",
    "encode_payload",
    "result_urls",
    "scheme_of",
    "state_document",
]

RESULT_PORT = 8788   # the runner's pick-up server, on the job pod's loopback (reached by port-forward only)
RESULT_PATH = "/result"
PAYLOAD_MAGIC = b"DOK-RESULT/1\n"  # first bytes of every payload: a wrong file is named, not unpickled
PAYLOAD_NAME = "result.pkl"
STATE_NAME = "state.json"
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*)://(.*)$")
# URL scheme -> the fsspec backend distribution the image needs (fsspec itself comes with dask).
_BACKENDS: dict[str, tuple[str, ...]] = {
    "file": (),
    "local": (),
    "memory": (),
    "s3": ("s3fs",),
    "s3a": ("s3fs",),
    "gs": ("gcsfs",),
    "gcs": ("gcsfs",),
    "az": ("adlfs",),
    "abfs": ("adlfs",),
    "abfss": ("adlfs",),
}
_READ_ONLY = ("http", "https", "ftp", "github", "zip", "tar")
_LOCATION_HINT = ("use an fsspec URL the job pod can write and you can read, e.g. s3://bucket/prefix (credentials "
                  "from a Secret: --secret-env AWS_ACCESS_KEY_ID=SECRET:KEY …) or file:///mnt/shared/results "
                  "on a volume both see")


class ResultLocationError(EnvironmentConfigError):
    """A result location that is not a usable URL (exit code 2)."""


class ResultPayloadError(DokError):
    """Bytes that are not a dok result payload, or one this version cannot read."""


@dataclass(frozen=True, kw_only=True)
class ResultUrls:
    """Where one run's results are: the payload (`result.pkl`) and the JSON State (`state.json`)."""

    directory: str
    payload: str
    state: str


@dataclass(frozen=True, kw_only=True)
class ResultPayload:
    """A decoded payload: the run's identifier, its final State, and the results replaced by their repr
    because they could not be pickled (task name, or `"<flow>"` for the flow's result), and the runner's exit
    code when it said one (None otherwise)."""

    identifier: str
    state: State
    unpicklable: tuple[str, ...] = ()
    exit_code: int | None = None


# -- URLs ------------------------------------------------------------------------------------------------------
def scheme_of(location: str) -> str:
    """The URL's scheme, lowercase ('s3', 'file', …); ResultLocationError when there is none."""
    match = _SCHEME.match(location.strip()) if isinstance(location, str) else None
    if match is None:
        raise ResultLocationError(f"result location {location!r} is not a URL (SCHEME://…)", hint=_LOCATION_HINT)
    return match.group(1)


def check_result_location(location: Any) -> str:
    """The location without a trailing '/', or ResultLocationError naming the problem: not a string, no
    scheme, nothing after the scheme, a relative file:// path, or a read-only scheme."""
    if not isinstance(location, str) or not location.strip():
        raise ResultLocationError(f"result location {location!r} must be a non-empty URL string", hint=_LOCATION_HINT)
    location = location.strip()
    if any(c in location for c in "\n\r\0"):
        raise ResultLocationError(f"result location {location!r} contains a control character", hint=_LOCATION_HINT)
    scheme = scheme_of(location)
    rest = _SCHEME.match(location).group(2)  # type: ignore[union-attr]  # scheme_of matched it
    if not rest.strip("/"):
        raise ResultLocationError(f"result location {location!r} names no bucket or directory", hint=_LOCATION_HINT)
    if scheme in _READ_ONLY:
        raise ResultLocationError(f"result location {location!r}: {scheme}:// cannot be written to",
                                  hint=_LOCATION_HINT)
    if scheme in ("file", "local") and not rest.startswith("/"):
        raise ResultLocationError(f"result location {location!r}: a file URL needs an absolute path "
                                  "(file:///path, three slashes)", hint=_LOCATION_HINT)
    return location.rstrip("/")


def backend_packages(location: str | None) -> tuple[str, ...]:
    """The distributions an image needs to write to `location` (besides fsspec): ('s3fs',) for s3://, …;
    () for None, local files and schemes fsspec serves itself."""
    if location is None:
        return ()
    return _BACKENDS.get(scheme_of(location), ())


def result_urls(location: str, identifier: str) -> ResultUrls:
    """Where the run `identifier` keeps its results under `location`."""
    directory = f"{check_result_location(location)}/{identifier}"
    return ResultUrls(directory=directory, payload=f"{directory}/{PAYLOAD_NAME}", state=f"{directory}/{STATE_NAME}")


# -- the payload -----------------------------------------------------------------------------------------------
def encode_payload(state: State, *, identifier: str, exit_code: int | None = None) -> bytes:
    """The payload bytes of a run's final State (see the module docstring)."""
    doc: dict[str, Any] = {"identifier": identifier, "state": state}
    if exit_code is not None:
        doc["exit_code"] = int(exit_code)
    try:
        return PAYLOAD_MAGIC + cloudpickle.dumps(doc)
    except Exception:  # noqa: BLE001 - some result cannot be pickled: find it, replace it by its repr
        pass
    cleaned, bad = _picklable_state(state)
    doc = {**doc, "state": cleaned, "unpicklable": bad}
    return PAYLOAD_MAGIC + cloudpickle.dumps(doc)


def decode_payload(data: bytes) -> ResultPayload:
    """The payload `encode_payload` made; ResultPayloadError when `data` is something else."""
    if not isinstance(data, (bytes, bytearray)) or not bytes(data[:len(PAYLOAD_MAGIC)]) == PAYLOAD_MAGIC:
        head = bytes(data[:40]) if isinstance(data, (bytes, bytearray)) else type(data).__name__
        raise ResultPayloadError(f"not a dok result payload (it starts with {head!r})",
                                 hint="read the result.pkl dok wrote, with `dok result ID`")
    try:
        doc = cloudpickle.loads(bytes(data[len(PAYLOAD_MAGIC):]))
    except Exception as exc:  # noqa: BLE001 - a class the caller lacks, a truncated file, …
        raise ResultPayloadError(f"cannot unpickle the result payload: {type(exc).__name__}: {exc}",
                                 hint="unpickle with the flow's code importable and the same Python, dask and "
                                      "cloudpickle versions as the image") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("state"), State):
        raise ResultPayloadError("the result payload holds no State")
    exit_code = doc.get("exit_code")
    return ResultPayload(identifier=str(doc.get("identifier", "")), state=doc["state"],
                         unpicklable=tuple(doc.get("unpicklable", ())),
                         exit_code=exit_code if isinstance(exit_code, int) else None)


def state_document(state: State, *, identifier: str) -> str:
    """The State as indented JSON: `{"identifier": …, "state": State.to_dict()}` (results that are not
    JSON-safe appear as their repr)."""
    return json.dumps({"identifier": identifier, "state": state.to_dict()}, indent=1, default=str)


def _picklable(value: Any) -> bool:
    try:
        cloudpickle.dumps(value)
    except Exception:  # noqa: BLE001
        return False
    return True


def _as_repr(value: Any) -> str:
    try:
        return f"<unpicklable {type(value).__name__}: {value!r}>"[:2000]
    except Exception:  # noqa: BLE001
        return f"<unpicklable {type(value).__name__}>"


def _picklable_state(state: State) -> tuple[State, list[str]]:
    bad: list[str] = []
    tasks: dict[str, State] = {}
    for name, task in state.task_states.items():
        if task.result is not None and not _picklable(task.result):
            bad.append(name)
            task = dataclasses.replace(task, result=_as_repr(task.result))
        tasks[name] = task
    result = state.result
    if isinstance(result, dict):
        result = {k: (v if _picklable(v) else _as_repr(v)) for k, v in result.items()}
        bad += [f"<flow>[{k}]" for k, v in state.result.items() if not _picklable(v)]
    elif result is not None and not _picklable(result):
        bad.append("<flow>")
        result = _as_repr(result)
    return dataclasses.replace(state, result=result, task_states=tasks), bad
