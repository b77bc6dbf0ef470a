#!/usr/bin/env bash
# Build the docker base image tornado-phoenix-base:bookworm from Debian packages
# (debootstrap minbase + docker import): python3 3.11, python3-venv, python3-pip,
# ca-certificates with this machine's CA bundle in the store. It stands in for
# python:3.11-slim-bookworm, which no registry here can serve:
#
#   docker build --build-arg BASE_IMAGE=tornado-phoenix-base:bookworm .
#
# Usage: base-image.sh [--force] [--save PATH] [--check]
#   (no args)    build unless an image with the current content hash exists
#   --force      rebuild regardless
#   --save PATH  after ensuring the image, `docker save` it to PATH (.tar, or .tar.gz)
#   --check      only run the venv/pip smoke check against the existing image
# Env: BASE_IMAGE_NAME (default tornado-phoenix-base:bookworm), SANDBOX_CACHE,
#      BASE_IMAGE_SMOKE_PIP=0 to skip the `pip install` from PyPI in the check.
set -euo pipefail
LOG_TAG=base-image
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IMAGE="${BASE_IMAGE_NAME:-tornado-phoenix-base:bookworm}"
HASH_LABEL=org.tornado-phoenix.base-hash
FORCE=0 SAVE="" CHECK_ONLY=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --force) FORCE=1 ;;
    --save) SAVE="${2:?--save needs a path}"; shift ;;
    --check) CHECK_ONLY=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
  shift
done

need_cmd docker
docker info >/dev/null 2>&1 || die "docker engine not answering: run 'make system-deps'"
HASH=$(content_hash "$SANDBOX_DIR/base-image.sh" "$SANDBOX_DIR/lib.sh")

smoke() {
  local pip_step="true"
  if [[ "${BASE_IMAGE_SMOKE_PIP:-1}" != 0 ]]; then
    # A real download from PyPI through the intercepting proxy: proves the CA store.
    pip_step="/tmp/v/bin/pip install --quiet --no-cache-dir --disable-pip-version-check iniconfig==2.0.0 && /tmp/v/bin/python -c 'import iniconfig'"
  fi
  local out
  if out=$(timeout 300 docker run --rm "$IMAGE" sh -ec "
      python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version'
      python3 -m venv /tmp/v
      $pip_step
      echo \"python \$(python3 -V 2>&1 | cut -d' ' -f2), venv ok, pip \$(/tmp/v/bin/pip -V | cut -d' ' -f2) ok\"" 2>&1); then
    say "check: $(echo "$out" | tail -n1)"
  else
    echo "$out" | tail -n 20 | sed 's/^/  | /' >&2
    die "smoke check of $IMAGE failed (python3 -m venv / pip install)"
  fi
}

save() {
  [[ -n "$SAVE" ]] || return 0
  mkdir -p "$(dirname "$SAVE")"
  say "save: docker save $IMAGE -> $SAVE"
  if [[ "$SAVE" == *.gz ]]; then
    docker save "$IMAGE" | gzip -1 >"$SAVE.tmp"
  else
    docker save -o "$SAVE.tmp" "$IMAGE"
  fi
  mv "$SAVE.tmp" "$SAVE"
  say "save: $(du -h "$SAVE" | cut -f1) written"
}

if [[ $CHECK_ONLY -eq 1 ]]; then
  smoke
  echo "result: base-image $IMAGE ok"
  exit 0
fi

current=$(docker image inspect "$IMAGE" --format "{{index .Config.Labels \"$HASH_LABEL\"}}" 2>/dev/null || true)
if [[ $FORCE -eq 0 && "$current" == "$HASH" ]]; then
  say "image $IMAGE is up to date (hash $HASH); skipping build"
  save
  echo "result: base-image $IMAGE ready (cached, hash $HASH)"
  exit 0
fi
[[ -n "$current" ]] && say "image $IMAGE has hash '${current}', want $HASH: rebuilding"

need_root
need_cmd debootstrap python3 tar
t0=$(now)
mkdir -p "$SANDBOX_CACHE"
WORK=$(mktemp -d "$SANDBOX_CACHE/base-image.XXXXXX")
ROOT="$WORK/rootfs"
LOG="$SANDBOX_CACHE/base-image-$HASH.log"
: >"$LOG"
cleanup() { chroot_umount; rm -rf "$WORK"; }
trap cleanup EXIT

say "debootstrap: $SUITE minbase + python3 python3-venv python3-pip ca-certificates (log $LOG)"
run_debootstrap "$ROOT" "$LOG" --variant=minbase \
  --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates
say "debootstrap: done in $(( $(now) - t0 ))s"

chroot_mount "$ROOT"
write_apt_sources "$ROOT"
install_host_ca "$ROOT"
say "trim: apt lists and caches (as the official slim image does)"
in_chroot "$ROOT" apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/log/*.log \
  "$ROOT"/var/cache/debconf/*-old "$ROOT"/usr/sbin/policy-rc.d "$ROOT"/tmp/* "$ROOT"/root/.cache
find "$ROOT/usr/lib/python3" -name __pycache__ -prune -exec rm -rf {} + 2>/dev/null || true
chroot_umount

say "import: tar of the rootfs | docker import -> $IMAGE (hash $HASH)"
tar -C "$ROOT" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . |
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --change "LABEL $HASH_LABEL=$HASH" \
    --change 'LABEL org.opencontainers.image.title=tornado-phoenix-base' \
    --change 'LABEL org.opencontainers.image.description="Debian bookworm minbase + python3.11 venv/pip, test fixture built by tests/infra/sandbox/base-image.sh"' \
    --change 'LABEL org.opencontainers.image.base.name=debian:bookworm' \
    - "$IMAGE" >/dev/null
docker tag "$IMAGE" "${IMAGE%%:*}:bookworm-$HASH"
say "import: $(docker image inspect "$IMAGE" --format '{{.Id}}' | cut -c1-19), $(( $(docker image inspect "$IMAGE" --format '{{.Size}}') / 1048576 )) MiB"
smoke
save
echo "result: base-image $IMAGE built in $(( $(now) - t0 ))s (hash $HASH)"
