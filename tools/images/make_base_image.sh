#!/usr/bin/env bash
# Makes a local Python base image from Debian, for machines without Docker Hub: debootstrap a minimal
# bookworm with python3 + venv + CA certificates, drop apt caches, `docker import` it, tag it.
# Idempotent: does nothing when the tag already exists (unless --force). Needs root (debootstrap).
#   tools/images/make_base_image.sh [--force] [TAG]        default TAG: dok-base:bookworm-py3.11
# Env: DOK_DEBIAN_MIRROR (default http://deb.debian.org/debian), DOK_DEBIAN_SUITE (default bookworm).
# Prints the image reference as its last line.
set -euo pipefail
# debootstrap and dockerd live in sbin; Bazel tests run with PATH=/bin:/usr/bin:/usr/local/bin.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
force=0
if [ "${1:-}" = "--force" ]; then force=1; shift; fi
tag="${1:-dok-base:bookworm-py3.11}"
suite="${DOK_DEBIAN_SUITE:-bookworm}"
mirror="${DOK_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
say() { printf 'make_base_image: %s\n' "$*" >&2; }
exists() { docker image inspect "$tag" >/dev/null 2>&1; }

command -v docker >/dev/null || { say "the docker CLI is missing (apt-get install docker.io)"; exit 2; }
docker info >/dev/null 2>&1 || { say "docker daemon is not running; start it: tools/dockerd/ensure.sh"; exit 2; }

# One build at a time on this machine (another tool may make the same tag the same way).
exec 9>/tmp/dok-make-base-image.lock
flock 9

if [ "$force" -eq 0 ] && exists; then
    say "$tag already exists; nothing to do"
    echo "$tag"; exit 0
fi
[ "$(id -u)" -eq 0 ] || { say "debootstrap needs root: sudo $0 $*"; exit 2; }
if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
fi

root="$(mktemp -d /var/tmp/dok-base.XXXXXX)"
log="$root.log"
trap 'rm -rf "$root" "$log"' EXIT
say "debootstrap $suite into $root (takes ~1-2 min)"
start=$(date +%s)
if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$suite" "$root" "$mirror" >"$log" 2>&1; then
    say "debootstrap failed (mirror $mirror; set DOK_DEBIAN_MIRROR for another); its last lines:"
    tail -n 30 "$log" >&2
    exit 1
fi
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/tmp/*
say "docker import -> $tag"
tar --numeric-owner -C "$root" -c . | docker import \
    -c 'ENV LANG=C.UTF-8' \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["python3"]' \
    -m "dok base image: debootstrap $suite minbase + python3, python3-venv, ca-certificates" \
    - "$tag" >/dev/null
say "done in $(( $(date +%s) - start )) s: $(docker run --rm "$tag" python3 --version)"
echo "$tag"
