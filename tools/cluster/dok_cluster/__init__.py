"""dok_cluster: brings up (and tears down) the Kubernetes cluster dok's e2e tests and demos run against.

`python -m dok_cluster up|down|status|kubeconfig|load-image IMAGE` (or `tools/bazel run //tools:cluster -- ...`).
Providers: `local` (Kubernetes 1.20.2 built from Debian's source, run as plain processes on this machine)
and `kind`. See docs/cluster.md.
"""
