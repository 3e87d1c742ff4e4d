#!/usr/bin/env bash
# CI entry points around the cluster tool (no Bazel needed: the tool is stdlib Python):
#   tools/cluster/ci.sh up     bring the local cluster up (a cold cache builds Kubernetes: ~10-20 min on 2 cores);
#                              on failure print the tail of every component log, exit non-zero
#   tools/cluster/ci.sh down   tear it down; never fails (meant for a `trap ... EXIT`)
#   tools/cluster/ci.sh logs   print the tail of every component log
# Typical .ci/run:  tools/cluster/ci.sh up; trap 'tools/cluster/ci.sh down' EXIT; tools/bazel test //:everything
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="${DOK_CLUSTER_STATE:-/var/lib/dok-cluster}"
py="$(command -v python3)"
cluster() { "$py" "$here/cluster.py" "$@"; }
logs() {
    for f in "$state"/logs/*.log; do
        [ -f "$f" ] || continue
        printf '\n===== %s (last 40 lines) =====\n' "$f"; tail -n 40 "$f"
    done
}
case "${1:-}" in
up)
    start=$(date +%s)
    if cluster up; then
        echo "ci.sh: cluster up in $(( $(date +%s) - start )) s"
        cluster status || true
    else
        rc=$?
        echo "ci.sh: cluster up FAILED after $(( $(date +%s) - start )) s" >&2
        logs >&2
        exit "$rc"
    fi ;;
down)
    start=$(date +%s)
    cluster down || echo "ci.sh: down reported an error (ignored)" >&2
    echo "ci.sh: cluster down in $(( $(date +%s) - start )) s"
    exit 0 ;;
logs) logs ;;
*) echo "usage: $0 up|down|logs" >&2; exit 2 ;;
esac
