# shellcheck shell=bash
# Shared helpers for base-image.sh, build-disk.sh and sandbox.sh. Sourced, not run.

SANDBOX_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SANDBOX_DIR/../../.." && pwd)"

: "${SANDBOX_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/tornado-phoenix/sandbox}"
: "${SANDBOX_STATE:=$REPO_ROOT/.sandbox}"
: "${DEBIAN_MIRROR:=http://deb.debian.org/debian}"
: "${DEBIAN_SECURITY_MIRROR:=http://deb.debian.org/debian-security}"
: "${HOST_CA_BUNDLE:=/etc/ssl/certs/ca-certificates.crt}"
SUITE=bookworm
DEB_CACHE="$SANDBOX_CACHE/debs"

# LOG_TAG is set by each script ("sandbox", "base-image", ...).
say() { echo "${LOG_TAG:-sandbox}: $*"; }
die() { echo "${LOG_TAG:-sandbox}: FAILED: $*" >&2; echo "result: ${LOG_TAG:-sandbox} FAILED" >&2; exit 1; }
now() { date +%s; }

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap, chroot)"; }

need_cmd() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || die "'$c' not found: run 'make system-deps' (scripts/system-deps.sh)"
  done
}

# sha256 over the given files (in order) plus the host CA bundle: a change to the
# build script or to the proxy CA means a new image.
content_hash() {
  {
    local f
    for f in "$@"; do
      if [[ -d "$f" ]]; then
        (cd "$f" && find . -type f | LC_ALL=C sort | xargs -r sha256sum)
      else
        sha256sum <"$f"
      fi
    done
    sha256sum <"$HOST_CA_BUNDLE"
  } | sha256sum | cut -c1-12
}

# Mount /proc, /sys, /dev/pts into a chroot; chroot_umount undoes it (also on error).
CHROOT_MOUNTS=()
chroot_mount() {
  local root=$1 m
  for m in proc sys dev dev/pts; do mkdir -p "$root/$m"; done
  mount -t proc proc "$root/proc" && CHROOT_MOUNTS+=("$root/proc")
  mount -t sysfs sysfs "$root/sys" && CHROOT_MOUNTS+=("$root/sys")
  mount --bind /dev "$root/dev" && CHROOT_MOUNTS+=("$root/dev")
  mount -t devpts devpts "$root/dev/pts" -o newinstance,ptmxmode=0666 && CHROOT_MOUNTS+=("$root/dev/pts")
  # No service may start inside the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
}
chroot_umount() {
  local i
  for ((i = ${#CHROOT_MOUNTS[@]} - 1; i >= 0; i--)); do
    umount -l "${CHROOT_MOUNTS[$i]}" 2>/dev/null || true
  done
  CHROOT_MOUNTS=()
}
in_chroot() {
  local root=$1; shift
  chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# debootstrap with a shared .deb cache (serialised: debootstrap's cache is not
# safe for two writers). Output goes to $2.log-style file given as $3.
run_debootstrap() {
  local root=$1 log=$2; shift 2
  mkdir -p "$DEB_CACHE"
  (
    flock -w 1800 9 || die "timed out waiting for the debootstrap cache lock"
    debootstrap --cache-dir="$DEB_CACHE" --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
      "$@" "$SUITE" "$root" "$DEBIAN_MIRROR"
  ) 9>"$DEB_CACHE/.lock" >>"$log" 2>&1 || {
    tail -n 25 "$log" >&2
    die "debootstrap failed (log $log)"
  }
}

# Debian's apt sources as a fresh VPS / the official image has them.
write_apt_sources() {
  local root=$1
  rm -f "$root/etc/apt/sources.list"
  mkdir -p "$root/etc/apt/sources.list.d"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $DEBIAN_SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

# Add the certificates of this machine's CA bundle that the target's own store
# lacks (the intercepting proxy's CA) to /usr/local/share/ca-certificates and
# rebuild the target's store. Test fixtures only.
install_host_ca() {
  local root=$1
  [[ -s "$HOST_CA_BUNDLE" ]] || die "host CA bundle $HOST_CA_BUNDLE missing"
  local n
  n=$(python3 - "$HOST_CA_BUNDLE" "$root" <<'PY'
import re, sys, pathlib
pem = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)
host_bundle, root = sys.argv[1], pathlib.Path(sys.argv[2])
known = set()
# Certificates that ship with Debian (on the host or in the target) are not ours to add.
for f in [*pathlib.Path("/usr/share/ca-certificates").rglob("*.crt"),
          *(root / "usr/share/ca-certificates").rglob("*.crt")]:
    known.update("".join(c.split()) for c in pem.findall(f.read_text(errors="replace")))
dest = root / "usr/local/share/ca-certificates"
dest.mkdir(parents=True, exist_ok=True)
n = 0
for cert in pem.findall(pathlib.Path(host_bundle).read_text(errors="replace")):
    if "".join(cert.split()) in known:
        continue
    n += 1
    (dest / f"tornado-phoenix-host-{n}.crt").write_text(cert + "\n")
print(n)
PY
)
  in_chroot "$root" update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates in $root failed"
  say "ca: added $n certificate(s) from $HOST_CA_BUNDLE to the target's store"
}
