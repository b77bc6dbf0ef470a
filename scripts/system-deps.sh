#!/usr/bin/env bash
# Install (only what is missing) and start the system pieces the tests need:
# a docker engine, qemu + debootstrap for the sandbox VM, chromium for browser tests.
# Idempotent: a second run installs nothing and leaves a running dockerd alone.
#
#   bash scripts/system-deps.sh            # everything
#   bash scripts/system-deps.sh --docker   # only make sure dockerd answers
#
# Env: DOCKERD_LOG (default /var/log/tornado-phoenix-dockerd.log),
#      DOCKERD_WAIT (seconds to wait for dockerd, default 60),
#      SYSTEM_DEPS_SKIP_SMOKE=1 skips the `docker run --rm` check.
set -euo pipefail

DOCKERD_LOG="${DOCKERD_LOG:-/var/log/tornado-phoenix-dockerd.log}"
DOCKERD_WAIT="${DOCKERD_WAIT:-60}"
SMOKE_IMAGE="tornado-phoenix-smoke:empty"
ONLY_DOCKER=0
[[ "${1:-}" == "--docker" ]] && ONLY_DOCKER=1

PACKAGES=(
  docker.io            # engine + CLI (Debian's build; no registry is reachable anyway)
  iptables             # dockerd's NAT for bridge networking
  qemu-system-x86      # the sandbox VPS, software emulation (TCG)
  qemu-utils           # qemu-img: qcow2 base + copy-on-write overlays
  debootstrap          # builds the VM disk and the docker base image from Debian packages
  debian-archive-keyring
  e2fsprogs            # mkfs.ext4 -d: fills the VM disk without loop mounts
  openssh-client       # ssh / ssh-keygen for the VM
  socat                # talks to the qemu monitor socket
  iproute2             # ss: port checks before qemu binds its forwards
  curl
  ca-certificates
  xz-utils
  redis-server         # tests start their own on free loopback ports (issue 11: pub/sub across nodes)
  chromium             # browser tests
  chromium-driver
)

say() { echo "system-deps: $*"; }
die() { echo "system-deps: FAILED: $*" >&2; echo "result: system-deps FAILED" >&2; exit 1; }

if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi

install_missing() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    if dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii'; then
      continue
    fi
    missing+=("$p")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    say "packages: all ${#PACKAGES[@]} present"
    return 0
  fi
  say "packages: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d-free install: on a machine without systemd the maintainer scripts
  # cannot start services anyway; we start dockerd ourselves below.
  $SUDO apt-get update -qq || say "packages: apt-get update reported errors (continuing)"
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/tornado-phoenix-apt.log 2>&1 \
    || { tail -n 30 /tmp/tornado-phoenix-apt.log >&2; die "apt-get install ${missing[*]}"; }
  say "packages: installed ${#missing[@]} (log /tmp/tornado-phoenix-apt.log)"
}

docker_ok() { timeout 20 docker info >/dev/null 2>&1; }

# dockerd flags that work on this kind of machine: cgroupfs driver (no systemd as
# PID 1 here), and fall back to no iptables if the kernel refuses the NAT rules.
start_dockerd() {
  local extra=("$@")
  say "dockerd: starting in the background (log $DOCKERD_LOG) ${extra[*]:-}"
  $SUDO mkdir -p "$(dirname "$DOCKERD_LOG")"
  # setsid: own session, so it survives the make/pytest process that started it.
  $SUDO setsid nohup dockerd --exec-opt native.cgroupdriver=cgroupfs "${extra[@]}" \
    >>"$DOCKERD_LOG" 2>&1 </dev/null &
  local pid=$! waited=0
  while ! docker_ok; do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "dockerd: exited early; last log lines:"
      tail -n 15 "$DOCKERD_LOG" | sed 's/^/  | /'
      return 1
    fi
    if (( waited >= DOCKERD_WAIT )); then
      say "dockerd: no answer after ${DOCKERD_WAIT}s; last log lines:"
      tail -n 15 "$DOCKERD_LOG" | sed 's/^/  | /'
      kill "$pid" 2>/dev/null || true
      return 1
    fi
    sleep 1; waited=$((waited + 1))
  done
  say "dockerd: up after ${waited}s (pid $pid)"
}

ensure_dockerd() {
  if docker_ok; then
    say "dockerd: already running ($(docker info --format '{{.ServerVersion}} {{.Driver}} {{.CgroupDriver}}' 2>/dev/null))"
    return 0
  fi
  command -v dockerd >/dev/null || die "dockerd not installed (run without --docker)"
  # A stale pidfile from a killed dockerd blocks a new one.
  if [[ -f /var/run/docker.pid ]] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    say "dockerd: removing stale /var/run/docker.pid"
    $SUDO rm -f /var/run/docker.pid
  fi
  if [[ -f /var/run/docker.pid ]]; then
    say "dockerd: a dockerd (pid $(cat /var/run/docker.pid)) exists but does not answer; waiting for it"
    local waited=0
    while ! docker_ok && (( waited < DOCKERD_WAIT )); do sleep 1; waited=$((waited + 1)); done
    docker_ok && { say "dockerd: answered after ${waited}s"; return 0; }
    die "dockerd pid $(cat /var/run/docker.pid) does not answer; see $DOCKERD_LOG"
  fi
  start_dockerd && return 0
  say "dockerd: retrying without iptables/bridge NAT (containers then need --network host)"
  $SUDO rm -f /var/run/docker.pid
  start_dockerd --iptables=false && return 0
  die "dockerd would not start; see $DOCKERD_LOG"
}

# `docker run --rm` of an image imported from a local tarball (no registry here).
smoke_docker() {
  [[ "${SYSTEM_DEPS_SKIP_SMOKE:-0}" == 1 ]] && { say "docker smoke: skipped"; return 0; }
  if ! docker image inspect "$SMOKE_IMAGE" >/dev/null 2>&1; then
    say "docker smoke: importing $SMOKE_IMAGE from a tarball (the host's /bin/true + its libs)"
    local tmp; tmp=$(mktemp -d)
    # Smallest runnable rootfs: the host's `true` and the libraries it needs.
    mkdir -p "$tmp/root/bin"
    cp /bin/true "$tmp/root/bin/true"
    local lib
    for lib in $(ldd /bin/true | grep -oE '/[^ ]+'); do
      mkdir -p "$tmp/root$(dirname "$lib")"; cp -L "$lib" "$tmp/root$lib"
    done
    tar -C "$tmp/root" -c . | docker import --change 'CMD ["/bin/true"]' - "$SMOKE_IMAGE" >/dev/null
    rm -rf "$tmp"
  fi
  local out
  if out=$(timeout 60 docker run --rm "$SMOKE_IMAGE" /bin/true 2>&1); then
    say "docker smoke: docker run --rm $SMOKE_IMAGE ok"
  else
    echo "$out" | tail -n 10 | sed 's/^/  | /'
    die "docker run --rm $SMOKE_IMAGE failed"
  fi
}

if [[ $ONLY_DOCKER -eq 0 ]]; then
  install_missing
fi
ensure_dockerd
smoke_docker
if [[ $ONLY_DOCKER -eq 0 ]]; then
  say "qemu: $(qemu-system-x86_64 --version | head -n1)"
  say "kvm: $( [[ -w /dev/kvm ]] && echo 'device present (the sandbox still uses TCG: KVM does not work here)' || echo 'absent, TCG only')"
fi
echo "result: system-deps ok (docker $(docker version --format '{{.Server.Version}}' 2>/dev/null), qemu, debootstrap, chromium present)"
