#!/usr/bin/env bash
# Build the sandbox VPS disk: Debian bookworm from Debian packages (debootstrap),
# systemd as PID 1, openssh-server (root by key), DHCP via systemd-networkd,
# python3, sudo, iproute2, curl, this machine's CA bundle in the store, two decoy
# services on 0.0.0.0:3001 and 0.0.0.0:8001, a squatter on 0.0.0.0:4000, and (variant "plain") NO docker.
#
# Output, cached and keyed by a hash of this script + lib.sh + guest/ + host CA:
#   $SANDBOX_CACHE/vm-<variant>-<hash>/{disk.qcow2,vmlinuz,initrd.img,id_ed25519{,.pub},build.env}
# Prints that directory as its last line ("result: ... dir=PATH").
#
# Usage: build-disk.sh [--variant plain|docker] [--force] [--print-dir]
#   plain   the default fresh VPS: no docker (the deploy's docker role must install it)
#   docker  the same plus Debian's docker.io installed and enabled (saves ~7 min of
#           TCG apt time for tests that do not exercise the docker role)
#   --print-dir  only print the cache dir this build would use, build nothing
# Env: SANDBOX_CACHE, SANDBOX_DISK_SIZE (default 10G), SANDBOX_VARIANT.
set -euo pipefail
LOG_TAG=sandbox-build
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VARIANT="${SANDBOX_VARIANT:-plain}"
FORCE=0 PRINT_DIR=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --variant) VARIANT="${2:?}"; shift ;;
    --force) FORCE=1 ;;
    --print-dir) PRINT_DIR=1 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
  shift
done
case "$VARIANT" in plain|docker) ;; *) die "unknown variant '$VARIANT' (plain|docker)" ;; esac
DISK_SIZE="${SANDBOX_DISK_SIZE:-10G}"

HASH=$(content_hash "$SANDBOX_DIR/build-disk.sh" "$SANDBOX_DIR/lib.sh" "$SANDBOX_DIR/guest" < /dev/null)
HASH=$(printf '%s %s %s' "$HASH" "$VARIANT" "$DISK_SIZE" | sha256sum | cut -c1-12)
OUT="$SANDBOX_CACHE/vm-$VARIANT-$HASH"
if [[ $PRINT_DIR -eq 1 ]]; then echo "$OUT"; exit 0; fi

if [[ $FORCE -eq 0 && -f "$OUT/READY" ]]; then
  say "disk for variant '$VARIANT' is cached (hash $HASH)"
  echo "result: sandbox disk ready (cached) dir=$OUT"
  exit 0
fi

need_root
need_cmd debootstrap qemu-img mkfs.ext4 ssh-keygen python3 flock
mkdir -p "$SANDBOX_CACHE"
exec 8>"$SANDBOX_CACHE/vm-$VARIANT.lock"
say "waiting for the build lock of variant '$VARIANT' (another build may be running)"
flock -w 1800 8 || die "timed out waiting for $SANDBOX_CACHE/vm-$VARIANT.lock"
if [[ $FORCE -eq 0 && -f "$OUT/READY" ]]; then
  say "disk was built by a concurrent run"
  echo "result: sandbox disk ready (cached) dir=$OUT"
  exit 0
fi

t0=$(now)
WORK=$(mktemp -d "$SANDBOX_CACHE/vm-build.XXXXXX")
ROOT="$WORK/rootfs"
LOG="$WORK/build.log"
cleanup() {
  local rc=$?
  chroot_umount
  if [[ $rc -ne 0 && -f "$LOG" ]]; then
    cp "$LOG" "$SANDBOX_CACHE/vm-$VARIANT-failed-build.log" 2>/dev/null || true
    echo "sandbox-build: build log kept at $SANDBOX_CACHE/vm-$VARIANT-failed-build.log" >&2
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

GUEST_PACKAGES=(
  linux-image-amd64 initramfs-tools
  systemd systemd-sysv udev dbus kmod
  openssh-server sudo
  python3 python3-apt            # Ansible's python; python3-apt for its apt module
  iproute2 iputils-ping netbase procps less
  curl ca-certificates
  apparmor                       # on by default in Debian's kernel, as on a real VPS; docker.io
                                 # cannot start containers when the kernel has it but the tools are missing
)
[[ "$VARIANT" == docker ]] && GUEST_PACKAGES+=(docker.io)

say "debootstrap: $SUITE minbase (log $LOG)"
run_debootstrap "$ROOT" "$LOG" --variant=minbase --include=ca-certificates
say "debootstrap: done in $(( $(now) - t0 ))s"

chroot_mount "$ROOT"
# Share the .deb cache with debootstrap, under its lock (apt is not safe for two writers).
mkdir -p "$ROOT/var/cache/apt/archives"
mount --bind "$DEB_CACHE" "$ROOT/var/cache/apt/archives" && CHROOT_MOUNTS+=("$ROOT/var/cache/apt/archives")
write_apt_sources "$ROOT"
# No resume device: the initramfs must not wait for one.
mkdir -p "$ROOT/etc/initramfs-tools/conf.d"
echo RESUME=none >"$ROOT/etc/initramfs-tools/conf.d/resume"
echo sandbox >"$ROOT/etc/hostname"

t1=$(now)
say "apt: installing ${#GUEST_PACKAGES[@]} packages (kernel, systemd, sshd, python3...)"
(
  flock -w 1800 9 || exit 1
  in_chroot "$ROOT" apt-get update -q
  in_chroot "$ROOT" apt-get install -y -q --no-install-recommends "${GUEST_PACKAGES[@]}"
) 9>"$DEB_CACHE/.lock" >>"$LOG" 2>&1 || { tail -n 25 "$LOG" >&2; die "apt-get install in the guest rootfs failed"; }
say "apt: done in $(( $(now) - t1 ))s ($(in_chroot "$ROOT" dpkg-query -W -f='.' | wc -c) packages in the image)"

install_host_ca "$ROOT"

say "config: fstab, hosts, DNS, networkd DHCP, sshd, decoys on 3001/8001, squatter on 4000"
cat >"$ROOT/etc/fstab" <<'EOF'
/dev/vda  /  ext4  errors=remount-ro  0  1
EOF
cat >"$ROOT/etc/hosts" <<'EOF'
127.0.0.1 localhost
127.0.1.1 sandbox
::1       localhost ip6-localhost ip6-loopback
EOF
echo LANG=C.UTF-8 >"$ROOT/etc/default/locale"
# qemu user-mode networking answers DNS on 10.0.2.3; no resolved/resolvconf needed.
rm -f "$ROOT/etc/resolv.conf"
echo "nameserver 10.0.2.3" >"$ROOT/etc/resolv.conf"
cp -a "$SANDBOX_DIR/guest/." "$ROOT/"
chown -R root:root "$ROOT/etc/systemd/system" "$ROOT/etc/systemd/network" "$ROOT/etc/ssh/sshd_config.d" "$ROOT/srv"
in_chroot "$ROOT" systemctl enable systemd-networkd.service decoy-3001.service decoy-8001.service decoy-4000.service ssh.service >>"$LOG" 2>&1
# apt's daily timers would grab the dpkg lock right after the first boot (they are
# Persistent and have never run) and make the deploy's apt tasks fail or wait.
in_chroot "$ROOT" systemctl mask apt-daily.timer apt-daily-upgrade.timer >>"$LOG" 2>&1
# One fixed machine-id: VMs of this image never share a network.
rm -f "$ROOT/etc/machine-id" "$ROOT/var/lib/dbus/machine-id"
in_chroot "$ROOT" systemd-machine-id-setup >>"$LOG" 2>&1
if [[ "$VARIANT" == docker ]]; then
  in_chroot "$ROOT" systemctl enable docker.service containerd.service >>"$LOG" 2>&1
fi

say "ssh: generating the client key pair (ed25519) and root's authorized_keys"
mkdir -p "$WORK/out"
ssh-keygen -q -t ed25519 -N '' -C "tornado-phoenix-sandbox-$HASH" -f "$WORK/out/id_ed25519"
install -d -m 700 "$ROOT/root/.ssh"
install -m 600 "$WORK/out/id_ed25519.pub" "$ROOT/root/.ssh/authorized_keys"

say "kernel: copying vmlinuz + initrd for direct kernel boot"
KVER=$(basename "$(ls -1 "$ROOT"/boot/vmlinuz-* | sort -V | tail -n1)" | sed 's/^vmlinuz-//')
[[ -n "$KVER" && -f "$ROOT/boot/initrd.img-$KVER" ]] || die "no kernel/initrd in the rootfs"
cp "$ROOT/boot/vmlinuz-$KVER" "$WORK/out/vmlinuz"
cp "$ROOT/boot/initrd.img-$KVER" "$WORK/out/initrd.img"

# No `apt-get clean` here: the archives dir is the shared .deb cache, bind-mounted.
chroot_umount
rm -f "$ROOT/usr/sbin/policy-rc.d"
rm -rf "$ROOT"/tmp/* "$ROOT"/var/tmp/* "$ROOT"/var/log/apt/* "$ROOT"/var/cache/apt/*.bin
find "$ROOT/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -delete 2>/dev/null || true

t2=$(now)
say "disk: mkfs.ext4 -d rootfs into a $DISK_SIZE sparse image, then qcow2"
truncate -s "$DISK_SIZE" "$WORK/disk.raw"
mkfs.ext4 -q -F -L sandbox-root -d "$ROOT" "$WORK/disk.raw" >>"$LOG" 2>&1 || { tail -n 20 "$LOG" >&2; die "mkfs.ext4 -d failed"; }
qemu-img convert -O qcow2 "$WORK/disk.raw" "$WORK/out/disk.qcow2"
rm -f "$WORK/disk.raw"
say "disk: done in $(( $(now) - t2 ))s ($(du -h "$WORK/out/disk.qcow2" | cut -f1) on disk)"

cat >"$WORK/out/build.env" <<EOF
SANDBOX_BUILD_HASH=$HASH
SANDBOX_BUILD_VARIANT=$VARIANT
SANDBOX_BUILD_KERNEL=$KVER
SANDBOX_BUILD_SECONDS=$(( $(now) - t0 ))
SANDBOX_BUILD_DATE=$(date -u +%FT%TZ)
EOF
cp "$LOG" "$WORK/out/build.log"
rm -rf "$OUT"
mv "$WORK/out" "$OUT"
touch "$OUT/READY"

# Keep the cache bounded: older builds of this variant go.
for old in "$SANDBOX_CACHE"/vm-"$VARIANT"-*; do
  [[ -d "$old" && "$old" != "$OUT" ]] || continue
  if pgrep -f -- "$old/" >/dev/null 2>&1; then
    say "cache: keeping the outdated build $(basename "$old"): a running qemu uses it"
    continue
  fi
  say "cache: removing the outdated build $(basename "$old")"
  rm -rf "$old"
done
echo "result: sandbox disk built in $(( $(now) - t0 ))s (variant $VARIANT, kernel $KVER) dir=$OUT"
