"""Python handle on the sandbox VPS (a qemu/TCG Debian VM), wrapping sandbox.sh.

    vm = SandboxVM()            # env: SANDBOX_STATE, SANDBOX_SSH_PORT, SANDBOX_PORT_FIRST/LAST, ...
    vm.up()                     # fresh overlay, boot, wait for SSH, write inventory.ini
    vm.ssh("ss -ltnH").stdout
    before = vm.boot_id(); vm.reboot(); assert vm.boot_id() != before
    vm.down()

Every sandbox.sh line is echoed to stdout (pytest shows it with -s or on failure).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

SANDBOX_DIR = Path(__file__).resolve().parent
REPO_ROOT = SANDBOX_DIR.parents[2]
SANDBOX_SH = SANDBOX_DIR / "sandbox.sh"
BASE_IMAGE_SH = SANDBOX_DIR / "base-image.sh"
SYSTEM_DEPS_SH = REPO_ROOT / "scripts" / "system-deps.sh"
BASE_IMAGE = "tornado-phoenix-base:bookworm"


class SandboxError(RuntimeError):
    pass


def _run_logged(argv: list[str], env: dict[str, str], timeout: float) -> str:
    """Run argv, echo its output line by line as it comes, return the whole output.
    Killed after timeout seconds even if it prints nothing."""
    lines: list[str] = []

    def pump(stream) -> None:
        for line in stream:
            lines.append(line)
            sys.stdout.write(line)
            sys.stdout.flush()

    with subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        reader = threading.Thread(target=pump, args=(proc.stdout,), daemon=True)
        reader.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            reader.join(5)
            raise SandboxError(f"{' '.join(argv)} took longer than {timeout:.0f}s:\n{''.join(lines)[-4000:]}") from None
        reader.join(10)
    out = "".join(lines)
    if rc != 0:
        raise SandboxError(f"{' '.join(argv)} exited {rc}:\n{out[-4000:]}")
    return out


class SandboxVM:
    """One sandbox VM. Arguments override the SANDBOX_* environment variables."""

    def __init__(
        self,
        state_dir: str | os.PathLike | None = None,
        ssh_port: int | None = None,
        port_first: int | None = None,
        port_last: int | None = None,
        variant: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        boot_timeout: int | None = None,
    ) -> None:
        env = dict(os.environ)
        overrides = {
            "SANDBOX_STATE": state_dir,
            "SANDBOX_SSH_PORT": ssh_port,
            "SANDBOX_PORT_FIRST": port_first,
            "SANDBOX_PORT_LAST": port_last,
            "SANDBOX_VARIANT": variant,
            "SANDBOX_CACHE": cache_dir,
            "SANDBOX_BOOT_TIMEOUT": boot_timeout,
        }
        for key, value in overrides.items():
            if value is not None:
                env[key] = str(value)
        env.setdefault("SANDBOX_STATE", str(REPO_ROOT / ".sandbox"))
        self.env = env
        self.state_dir = Path(env["SANDBOX_STATE"])
        self.boot_timeout = int(env.get("SANDBOX_BOOT_TIMEOUT", "300"))
        self.last_boot_seconds: float | None = None
        self.last_reboot_seconds: float | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def _sh(self, *args: str, timeout: float = 1800) -> str:
        return _run_logged(["bash", str(SANDBOX_SH), *args], self.env, timeout)

    def build(self) -> str:
        return self._sh("build")

    def up(self, fresh: bool = True) -> SandboxVM:
        """Boot a fresh VM (stopping one already running from this state dir when fresh)."""
        t0 = time.monotonic()
        self._sh("up", *(["--fresh"] if fresh else []), timeout=1800 + self.boot_timeout)
        self.last_boot_seconds = time.monotonic() - t0
        return self

    def down(self) -> None:
        self._sh("down", timeout=120)

    def status(self) -> str:
        return self._sh("status", timeout=60)

    # -- access ------------------------------------------------------------------------
    @property
    def ssh_config(self) -> Path:
        return self.state_dir / "ssh_config"

    @property
    def inventory_path(self) -> Path:
        return self.state_dir / "inventory.ini"

    @property
    def serial_log(self) -> Path:
        return self.state_dir / "serial.log"

    def _state_env(self) -> dict[str, str]:
        path = self.state_dir / "sandbox.env"
        if not path.exists():
            raise SandboxError(f"{path} missing: the sandbox is not up")
        pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        return {k: v for k, v in pairs}

    @property
    def addr(self) -> str:
        """The loopback address the VM's forwards listen on (127.0.0.2: not 127.0.0.1, like a separate host)."""
        return self._state_env().get("SANDBOX_ADDR", "127.0.0.1")

    @property
    def ssh_port(self) -> int:
        return int(self._state_env()["SANDBOX_SSH_PORT"])

    @property
    def key_path(self) -> Path:
        return Path(self._state_env()["SANDBOX_KEY"])

    @property
    def port_range(self) -> range:
        env = self._state_env()
        return range(int(env["SANDBOX_PORT_FIRST"]), int(env["SANDBOX_PORT_LAST"]) + 1)

    def ssh_argv(self, cmd: str | None = None) -> list[str]:
        argv = ["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", "sandbox"]
        return argv + ([cmd] if cmd else [])

    def ssh(
        self, cmd: str, check: bool = True, timeout: float = 600, input: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run a shell command in the guest as root; capture stdout/stderr as text."""
        res = subprocess.run(
            self.ssh_argv(cmd), capture_output=True, text=True, timeout=timeout, input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and res.returncode != 0:
            raise SandboxError(
                f"ssh sandbox {cmd!r} exited {res.returncode}\nstdout: {res.stdout[-2000:]}\n"
                f"stderr: {res.stderr[-2000:]}"
            )
        return res

    def wait_ssh(self, timeout: float = 300) -> float:
        """Wait until SSH answers; return the seconds waited. Bounded by timeout."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while True:
            try:
                res = subprocess.run(
                    self.ssh_argv("true") + [], capture_output=True, text=True, timeout=25,
                    stdin=subprocess.DEVNULL,
                )
                if res.returncode == 0:
                    return time.monotonic() - t0
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                raise SandboxError(f"no SSH after {timeout:.0f}s\n{self.serial_tail()}")
            time.sleep(3)

    def boot_id(self) -> str:
        return self.ssh("cat /proc/sys/kernel/random/boot_id").stdout.strip()

    def reboot(self, timeout: float = 400) -> float:
        """A real `reboot` in the guest; waits until a new boot_id answers. Returns seconds."""
        before = self.boot_id()
        t0 = time.monotonic()
        # systemctl returns before the connection drops; ignore the ssh exit status.
        self.ssh("systemctl reboot", check=False, timeout=60)
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            time.sleep(5)
            try:
                res = self.ssh("cat /proc/sys/kernel/random/boot_id", check=False, timeout=30)
            except subprocess.TimeoutExpired:
                continue
            if res.returncode == 0 and res.stdout.strip() and res.stdout.strip() != before:
                self.last_reboot_seconds = time.monotonic() - t0
                return self.last_reboot_seconds
        raise SandboxError(f"guest did not come back from reboot within {timeout:.0f}s\n{self.serial_tail()}")

    def serial_tail(self, lines: int = 40) -> str:
        try:
            text = self.serial_log.read_text(errors="replace").replace("\r", "")
        except OSError:
            return "(no serial log)"
        return "\n".join(text.splitlines()[-lines:])


def ensure_docker_engine() -> None:
    """dockerd answering; starts it (and installs what is missing) via scripts/system-deps.sh."""
    try:
        ok = subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        # No docker CLI at all: the full install, not only the engine start.
        _run_logged(["bash", str(SYSTEM_DEPS_SH)], dict(os.environ), 1200)
        return
    if not ok:
        _run_logged(["bash", str(SYSTEM_DEPS_SH), "--docker"], dict(os.environ), 300)


def ensure_base_image() -> str:
    """tornado-phoenix-base:bookworm built (cached by content hash); returns its name."""
    _run_logged(["bash", str(BASE_IMAGE_SH)], dict(os.environ), 1800)
    return BASE_IMAGE
