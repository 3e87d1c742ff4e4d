"""Benchmark: a worker process's start, from exec to joined, `dask worker` CLI against dok's worker entrypoint.

    tools/bazel run //tools/bench:worker_start -- [--rounds 8] [--image IMAGE]

A scheduler runs in this process (loopback only); each round starts one worker with the command worker pods
used before (`dask worker ADDR --no-nanny --no-dashboard ...`, "cli") and one with the command they use now
(`python -m dok.runner.worker ADDR ...`, "dok"), alternating, and records for each the wall time from exec
to the scheduler seeing the worker and the CPU seconds (user + system) the worker process had used by then
(from /proc: less sensitive than wall time to the other load of a shared machine). With `--image` (a flow
image built by `dok build` from the current sources) the whole benchmark runs inside that image as the pods
do: UID 1000, read-only root filesystem, /tmp a tmpfs, no network but loopback — so the image's bytecode is
what gets loaded. Prints one line per start, the medians, and last `cpu_saved_fraction=<1 - dok/cli CPU>`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

KINDS = ("cli", "dok")


def command(kind: str, address: str, name: str) -> list[str]:
    if kind == "cli":
        return [os.path.join(os.path.dirname(sys.executable), "dask"), "worker", address, "--name", name,
                "--nthreads", "1", "--no-nanny", "--no-dashboard", "--local-directory", "/tmp",
                "--death-timeout", "60s"]
    return [sys.executable, "-m", "dok.runner.worker", address, "--name", name, "--nthreads", "1",
            "--local-directory", "/tmp", "--death-timeout", "60s"]


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(rounds: int) -> dict[str, list[tuple[float, float]]]:
    from distributed import Scheduler

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in KINDS}
    async with Scheduler(host="127.0.0.1", port=0, dashboard_address=None) as scheduler:
        def present(name: str) -> bool:
            return any(ws.name == name for ws in scheduler.workers.values())

        for r in range(rounds):
            for kind in (KINDS if r % 2 == 0 else KINDS[::-1]):
                name = f"{kind}-{r}"
                t0 = time.perf_counter()
                proc = subprocess.Popen(command(kind, scheduler.address, name), env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    while not present(name):
                        if proc.poll() is not None:
                            raise SystemExit(f"worker_start: the {kind} worker exited with {proc.returncode}")
                        await asyncio.sleep(0.002)
                    wall, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid)
                finally:
                    proc.terminate()
                    proc.wait()
                while present(name):
                    await asyncio.sleep(0.01)
                results[kind].append((wall, cpu))
                print(f"round {r + 1} {kind}: wall_s={wall:.3f} cpu_s={cpu:.2f}", flush=True)
    return results


def report(results: dict[str, list[tuple[float, float]]]) -> None:
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in results.items()}
    for kind in KINDS:
        print(f"median {kind}: wall_s={med[kind][0]:.3f} cpu_s={med[kind][1]:.3f}")
    print(f"wall_saved_fraction={1 - med['dok'][0] / med['cli'][0]:.2f}")
    print(f"cpu_saved_fraction={1 - med['dok'][1] / med['cli'][1]:.2f}")


def in_image(image: str, rounds: int) -> int:
    """Run this file inside `image` as the worker pods run (the source goes in on stdin)."""
    with open(__file__, "rb") as f:
        source = f.read()
    argv = ["docker", "run", "--rm", "-i", "--user", "1000:1000", "--read-only", "--tmpfs", "/tmp",
            "--network", "none", "-e", "HOME=/tmp", image, "python", "-", "--rounds", str(rounds)]
    return subprocess.run(argv, input=source, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--image", default=None, help="a dok flow image: run inside it (docker), as worker pods do")
    args = ap.parse_args(argv)
    if args.image:
        return in_image(args.image, args.rounds)
    import logging

    logging.getLogger("distributed").setLevel(logging.WARNING)
    report(asyncio.run(measure(args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
