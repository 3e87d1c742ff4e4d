#!/usr/bin/env bash
# Makes sure a Docker engine answers on /var/run/docker.sock: installs Debian's docker.io when missing and
# starts dockerd in the background when it is not running. Idempotent; prints what it did on stderr.
# The PID of a dockerd started here is written to /var/run/dok-dockerd.pid (stop it with `stop`).
#   tools/dockerd/ensure.sh [start|stop|status]
set -euo pipefail
# debootstrap and dockerd live in sbin; Bazel tests run with PATH=/bin:/usr/bin:/usr/local/bin.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
pidfile=/var/run/dok-dockerd.pid
log=/var/log/dok-dockerd.log
say() { printf 'dockerd: %s\n' "$*" >&2; }
# Ping the engine over its socket (python3 is always there; curl may not be on a fresh machine).
alive() {
    python3 - <<'PY' >/dev/null 2>&1
import socket
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect("/var/run/docker.sock")
s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
assert s.recv(64).split()[1] == b"200"
PY
}

case "${1:-start}" in
status)
    if alive; then say "running"; exit 0; else say "not running"; exit 1; fi ;;
stop)
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        kill "$(cat "$pidfile")"; say "stopped dockerd (pid $(cat "$pidfile"))"; rm -f "$pidfile"
    else
        say "no dockerd started by dok is running"
    fi
    exit 0 ;;
start) ;;
*) say "usage: $0 [start|stop|status]"; exit 2 ;;
esac

alive && exit 0
if ! command -v dockerd >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || { say "dockerd is not installed; run: sudo apt-get install docker.io"; exit 2; }
    say "installing docker.io (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >&2
fi
[ "$(id -u)" -eq 0 ] || { say "dockerd is not running and starting it needs root: sudo dockerd &"; exit 2; }
say "starting dockerd (log: $log)"
nohup dockerd >"$log" 2>&1 &
echo $! > "$pidfile"
for _ in $(seq 1 60); do
    alive && { say "ready (pid $(cat "$pidfile"))"; exit 0; }
    kill -0 "$(cat "$pidfile")" 2>/dev/null || break
    sleep 0.5
done
say "dockerd did not become ready; last lines of $log:"; tail -n 20 "$log" >&2
exit 1
