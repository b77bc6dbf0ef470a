#!/usr/bin/env bash
# The sandbox VPS: a real Debian bookworm VM under qemu (software emulation, TCG)
# that the deploy bundle is proven against. Loopback-only port forwards:
#   $SANDBOX_ADDR:$SANDBOX_SSH_PORT (127.0.0.2:2222)          -> guest :22
#   $SANDBOX_ADDR:$SANDBOX_PORT_FIRST..LAST (4000..4009) -> guest, same port numbers
# The address is not 127.0.0.1 on purpose: a real VPS is another host, so anything that dials
# "localhost" instead of the address the user typed fails here as it would there.
#
# Usage: sandbox.sh COMMAND
#   build           build (or reuse) the cached base disk for $SANDBOX_VARIANT
#   up              build if needed, fresh copy-on-write overlay, boot, wait for SSH,
#                   write $SANDBOX_STATE/inventory.ini and ssh_config
#   up --fresh      like up, but first stop a sandbox that is already running
#   down            power the VM off (ACPI, then kill qemu); keeps the serial log
#   status          is it running, ports, boot id
#   ssh [CMD...]    run CMD in the guest as root (no CMD: a shell)
#   reset           down, discard the overlay, up again: a fresh VM
#   wait-ssh [SEC]  wait until SSH answers (after a reboot, say)
#   serial [N]      print the last N lines of the serial console log
#
# Env:
#   SANDBOX_STATE       state dir (default <repo>/.sandbox)
#   SANDBOX_CACHE       cache dir (default ~/.cache/tornado-phoenix/sandbox)
#   SANDBOX_VARIANT     plain (default, no docker) | docker (docker.io preinstalled)
#   SANDBOX_ADDR        loopback address the forwards listen on (default 127.0.0.2)
#   SANDBOX_SSH_PORT    host port forwarded to guest 22 (default 2222)
#   SANDBOX_PORT_FIRST  first app port forwarded 1:1 (default 4000)
#   SANDBOX_PORT_LAST   last app port forwarded 1:1 (default 4009)
#   SANDBOX_MEM         guest RAM in MiB (default 3072)
#   SANDBOX_CPUS        guest vCPUs (default 2)
#   SANDBOX_BOOT_TIMEOUT seconds to wait for SSH on up (default 300)
#   SANDBOX_DOWN_GRACE  seconds to wait for an ACPI poweroff before killing (default 30)
#   SANDBOX_QEMU_EXTRA  extra qemu arguments (word-split)
set -euo pipefail
LOG_TAG=sandbox
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VARIANT="${SANDBOX_VARIANT:-plain}"
ADDR="${SANDBOX_ADDR:-127.0.0.2}"
SSH_PORT="${SANDBOX_SSH_PORT:-2222}"
PORT_FIRST="${SANDBOX_PORT_FIRST:-4000}"
PORT_LAST="${SANDBOX_PORT_LAST:-4009}"
MEM="${SANDBOX_MEM:-3072}"
CPUS="${SANDBOX_CPUS:-2}"
BOOT_TIMEOUT="${SANDBOX_BOOT_TIMEOUT:-300}"
DOWN_GRACE="${SANDBOX_DOWN_GRACE:-30}"

STATE="$SANDBOX_STATE"
PIDFILE="$STATE/qemu.pid"
SERIAL="$STATE/serial.log"
MONITOR="$STATE/monitor.sock"
OVERLAY="$STATE/overlay.qcow2"
INVENTORY="$STATE/inventory.ini"
SSH_CONFIG="$STATE/ssh_config"
ENVFILE="$STATE/sandbox.env"

for v in SSH_PORT PORT_FIRST PORT_LAST MEM CPUS BOOT_TIMEOUT DOWN_GRACE; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v='${!v}' is not a number"
done
[[ "$ADDR" =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "SANDBOX_ADDR='$ADDR' is not a loopback address (127.x.y.z)"
(( PORT_FIRST <= PORT_LAST && PORT_LAST - PORT_FIRST < 100 )) || die "bad port range $PORT_FIRST..$PORT_LAST (at most 100 ports)"
(( SSH_PORT < PORT_FIRST || SSH_PORT > PORT_LAST )) || die "SANDBOX_SSH_PORT $SSH_PORT lies inside the app port range"

qemu_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid; pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  # Only a qemu we started (a reused pid is not ours).
  grep -q qemu "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

serial_tail() {
  local n=${1:-40}
  if [[ -s "$SERIAL" ]]; then
    echo "----- last $n lines of the serial console ($SERIAL) -----" >&2
    tail -n "$n" "$SERIAL" | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' >&2
    echo "----- end of serial console -----" >&2
  else
    echo "(serial log $SERIAL is empty or missing)" >&2
  fi
}
UP_IN_PROGRESS=0
fail() {
  echo "${LOG_TAG}: FAILED: $*" >&2
  serial_tail 40
  if [[ $UP_IN_PROGRESS -eq 1 ]]; then
    local pid
    if pid=$(qemu_pid); then
      echo "${LOG_TAG}: stopping the half-booted qemu (pid $pid); serial log kept at $SERIAL" >&2
      kill "$pid" 2>/dev/null || true
    fi
  fi
  echo "result: sandbox FAILED" >&2
  exit 1
}

# up/down/reset of one state dir never run at the same time.
lock_state() {
  mkdir -p "$STATE"
  exec 7>"$STATE/.lock"
  flock -w 5 7 && return 0
  local pid
  # A qemu started by an older sandbox.sh inherited the lock fd: do not wait for it.
  if pid=$(qemu_pid) && ls -l "/proc/$pid/fd" 2>/dev/null | grep -qF -- "$STATE/.lock"; then
    say "lock: $STATE/.lock is held by the VM's own qemu (pid $pid); going on"
    return 0
  fi
  say "lock: another sandbox.sh works on $STATE; waiting (at most 900s)"
  flock -w 900 7 || die "another sandbox.sh holds $STATE/.lock for more than 900s"
}

ssh_base() {
  ssh -F "$SSH_CONFIG" "$@"
}

ssh_probe() {
  timeout 25 ssh -F "$SSH_CONFIG" -o ConnectTimeout=8 -o BatchMode=yes sandbox true >/dev/null 2>&1
}

build_dir() { bash "$SANDBOX_DIR/build-disk.sh" --variant "$VARIANT" --print-dir; }

cmd_build() {
  bash "$SANDBOX_DIR/build-disk.sh" --variant "$VARIANT" "$@"
}

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

write_access_files() {
  local dir=$1
  cat >"$SSH_CONFIG" <<EOF
# Written by tests/infra/sandbox/sandbox.sh up. Use: ssh -F $SSH_CONFIG sandbox
Host sandbox
  HostName $ADDR
  Port $SSH_PORT
  User root
  IdentityFile $STATE/id_ed25519
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  ConnectTimeout 15
  ServerAliveInterval 5
  ServerAliveCountMax 6
EOF
  cat >"$INVENTORY" <<EOF
# Written by tests/infra/sandbox/sandbox.sh up: the sandbox VPS (qemu/TCG) behind
# loopback forwards. App ports $PORT_FIRST..$PORT_LAST are forwarded 1:1, so
# ws://$ADDR:PORT from this machine is ws://HOST:PORT on a real VPS.
sandbox ansible_host=$ADDR ansible_port=$SSH_PORT ansible_user=root ansible_ssh_private_key_file=$STATE/id_ed25519 ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o ServerAliveInterval=5 -o ServerAliveCountMax=6' ansible_python_interpreter=/usr/bin/python3 app_public_host=$ADDR sandbox_port_first=$PORT_FIRST sandbox_port_last=$PORT_LAST sandbox_addr=$ADDR

[sandbox_vms]
sandbox
EOF
  cat >"$ENVFILE" <<EOF
SANDBOX_STATE=$STATE
SANDBOX_VARIANT=$VARIANT
SANDBOX_ADDR=$ADDR
SANDBOX_SSH_PORT=$SSH_PORT
SANDBOX_PORT_FIRST=$PORT_FIRST
SANDBOX_PORT_LAST=$PORT_LAST
SANDBOX_KEY=$STATE/id_ed25519
SANDBOX_DISK_DIR=$dir
SANDBOX_INVENTORY=$INVENTORY
SANDBOX_SSH_CONFIG=$SSH_CONFIG
EOF
}

wait_ssh() {
  local timeout=$1 t0 elapsed last_report=0 pid
  t0=$(now)
  while true; do
    if ssh_probe; then
      say "ssh: answering on $ADDR:$SSH_PORT after $(( $(now) - t0 ))s"
      return 0
    fi
    elapsed=$(( $(now) - t0 ))
    pid=$(qemu_pid) || fail "qemu exited while waiting for SSH"
    (( elapsed >= timeout )) && fail "no SSH on $ADDR:$SSH_PORT after ${timeout}s (qemu pid $pid still running)"
    if (( elapsed - last_report >= 20 )); then
      last_report=$elapsed
      local line
      line=$(tail -n 3 "$SERIAL" 2>/dev/null | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' | grep -v '^\s*$' | tail -n1 | cut -c1-110)
      say "ssh: waiting (${elapsed}s/${timeout}s); console: ${line:-<nothing yet>}"
    fi
    sleep 3
  done
}

cmd_up() {
  local fresh=0
  [[ "${1:-}" == "--fresh" ]] && fresh=1
  local pid
  if pid=$(qemu_pid); then
    if [[ $fresh -eq 1 ]]; then
      say "up: a sandbox is already running (pid $pid); stopping it for a fresh one"
      cmd_down
    else
      say "up: already running (pid $pid) on ssh $ADDR:$SSH_PORT; 'reset' gives a fresh VM"
      echo "result: sandbox up (already running) inventory=$INVENTORY"
      return 0
    fi
  fi
  need_cmd qemu-system-x86_64 qemu-img ssh ss
  local t0 dir
  t0=$(now)
  say "up: making sure the base disk (variant $VARIANT) is built"
  mkdir -p "$STATE"
  cmd_build 2>&1 | tee "$STATE/build.out" | sed -u 's/^result: /sandbox: build: /' \
    || die "disk build failed (see above)"
  dir=$(sed -n 's/^result: .* dir=//p' "$STATE/build.out" | tail -n1)
  [[ -n "$dir" && -f "$dir/READY" ]] || die "build did not report its dir"

  local p busy=()
  for p in "$SSH_PORT" $(seq "$PORT_FIRST" "$PORT_LAST"); do
    port_busy "$p" && busy+=("$p")
  done
  [[ ${#busy[@]} -eq 0 ]] || die "host port(s) ${busy[*]} already in use on this machine (another sandbox? set SANDBOX_SSH_PORT / SANDBOX_PORT_FIRST / SANDBOX_PORT_LAST)"

  mkdir -p "$STATE"
  rm -f "$OVERLAY" "$SERIAL" "$MONITOR" "$PIDFILE" "$INVENTORY" "$SSH_CONFIG" "$ENVFILE" "$STATE/qemu.log"
  say "up: fresh copy-on-write overlay $OVERLAY over $dir/disk.qcow2"
  qemu-img create -q -f qcow2 -b "$dir/disk.qcow2" -F qcow2 "$OVERLAY"
  # A copy of the client key in the state dir: the VM stays reachable even if the
  # cache build it came from is replaced while it runs.
  install -m 600 "$dir/id_ed25519" "$STATE/id_ed25519"
  install -m 644 "$dir/id_ed25519.pub" "$STATE/id_ed25519.pub"
  write_access_files "$dir"

  local fwd="hostfwd=tcp:$ADDR:$SSH_PORT-:22"
  for p in $(seq "$PORT_FIRST" "$PORT_LAST"); do fwd+=",hostfwd=tcp:$ADDR:$p-:$p"; done
  local args=(
    -name "tornado-phoenix-sandbox,process=tp-sandbox"
    -machine q35 -accel tcg,thread=multi -cpu max
    -smp "$CPUS" -m "$MEM"
    -kernel "$dir/vmlinuz" -initrd "$dir/initrd.img"
    -append "console=ttyS0 root=/dev/vda ro net.ifnames=0 mitigations=off panic=10"
    -drive "file=$OVERLAY,if=virtio,format=qcow2,cache=unsafe,discard=unmap"
    -netdev "user,id=net0,$fwd" -device virtio-net-pci,netdev=net0
    -device virtio-rng-pci
    -display none -vga none
    -chardev "file,id=serial0,path=$SERIAL" -serial chardev:serial0
    -monitor "unix:$MONITOR,server,nowait"
    -pidfile "$PIDFILE" -daemonize
  )
  # shellcheck disable=SC2206
  [[ -n "${SANDBOX_QEMU_EXTRA:-}" ]] && args+=($SANDBOX_QEMU_EXTRA)
  say "up: starting qemu (tcg, ${CPUS} vCPU, ${MEM} MiB; ssh $ADDR:$SSH_PORT->22, $ADDR:$PORT_FIRST-$PORT_LAST 1:1; serial $SERIAL)"
  local qlog="$STATE/qemu.log"
  # 7>&-: the daemonized qemu must not inherit (and so hold forever) the state lock.
  qemu-system-x86_64 "${args[@]}" >"$qlog" 2>&1 7>&- || { cat "$qlog" >&2; fail "qemu did not start"; }
  UP_IN_PROGRESS=1
  pid=$(qemu_pid) || { cat "$qlog" >&2; fail "qemu started but its pid is gone"; }
  say "up: qemu running (pid $pid); waiting up to ${BOOT_TIMEOUT}s for SSH"
  wait_ssh "$BOOT_TIMEOUT"
  local boot; boot=$(( $(now) - t0 ))
  UP_IN_PROGRESS=0
  echo "SANDBOX_BOOT_SECONDS=$boot" >>"$ENVFILE"
  say "up: inventory $INVENTORY, ssh config $SSH_CONFIG"
  echo "result: sandbox up in ${boot}s (ssh -F $SSH_CONFIG sandbox) inventory=$INVENTORY"
}

cmd_down() {
  local pid
  if ! pid=$(qemu_pid); then
    rm -f "$PIDFILE" "$MONITOR"
    say "down: not running"
    echo "result: sandbox down"
    return 0
  fi
  say "down: ACPI power-off of pid $pid (grace ${DOWN_GRACE}s)"
  if [[ -S "$MONITOR" ]]; then
    echo system_powerdown | timeout 5 socat - "UNIX-CONNECT:$MONITOR" >/dev/null 2>&1 || true
  fi
  local i
  for ((i = 0; i < DOWN_GRACE; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "down: still running after ${DOWN_GRACE}s; terminating qemu"
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then
      say "down: killing qemu (SIGKILL)"
      kill -9 "$pid" 2>/dev/null || true
      sleep 1
    fi
  else
    say "down: guest powered off after ${i}s"
  fi
  rm -f "$PIDFILE" "$MONITOR"
  echo "result: sandbox down"
}

cmd_status() {
  local pid
  if pid=$(qemu_pid); then
    say "status: running, qemu pid $pid, up $(ps -o etime= -p "$pid" | tr -d ' '), variant $VARIANT"
    say "status: ssh $ADDR:$SSH_PORT, app ports $ADDR:$PORT_FIRST-$PORT_LAST, state $STATE"
    say "status: overlay $(du -h "$OVERLAY" 2>/dev/null | cut -f1) used"
    if ssh_probe; then
      say "status: ssh answers; boot_id $(ssh_base sandbox cat /proc/sys/kernel/random/boot_id 2>/dev/null)"
      echo "result: sandbox running"
    else
      say "status: ssh does not answer (booting or rebooting?)"
      echo "result: sandbox running (no ssh)"
    fi
  else
    say "status: not running (state dir $STATE)"
    echo "result: sandbox not running"
    return 3
  fi
}

cmd_ssh() {
  qemu_pid >/dev/null || die "not running: 'sandbox.sh up' first"
  [[ -f "$SSH_CONFIG" ]] || die "no $SSH_CONFIG: 'sandbox.sh up' first"
  if [[ $# -eq 0 ]]; then
    if [[ -t 0 ]]; then
      exec ssh -F "$SSH_CONFIG" -t sandbox
    fi
    say "ssh: no terminal and no command; running a summary instead"
    set -- 'echo "$(hostname): $(. /etc/os-release; echo $PRETTY_NAME), kernel $(uname -r), PID 1 $(cat /proc/1/comm), up $(cut -d. -f1 /proc/uptime)s"'
  fi
  exec ssh -F "$SSH_CONFIG" sandbox "$@"
}

cmd_reset() {
  cmd_down
  rm -f "$OVERLAY"
  say "reset: overlay discarded"
  cmd_up
}

case "${1:-}" in
  build) shift; cmd_build "$@" ;;
  up) shift; lock_state; cmd_up "$@" ;;
  down) lock_state; cmd_down ;;
  status) cmd_status ;;
  ssh) shift; cmd_ssh "$@" ;;
  reset) lock_state; cmd_reset ;;
  wait-ssh) qemu_pid >/dev/null || fail "not running"; wait_ssh "${2:-$BOOT_TIMEOUT}"; echo "result: sandbox ssh ready" ;;
  serial) tail -n "${2:-60}" "$SERIAL" | tr -d '\r' ;;
  -h|--help|help|"") sed -n '2,29p' "$0" ;;
  *) die "unknown command '$1' (build|up|down|status|ssh|reset|wait-ssh|serial)" ;;
esac
