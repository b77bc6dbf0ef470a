"""Smoke test of the sandbox VPS the deploy is proven against: a fresh VM as a fresh
VPS looks (systemd, sshd by key, decoys on 3001/8001, python3, no docker, HTTPS out).

Quick beyond the boot, but for one real reboot of the guest (about 1-3 min).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.e2e


def test_pid1_is_systemd(sandbox_vm):
    assert sandbox_vm.ssh("cat /proc/1/comm").stdout.strip() == "systemd"
    state = sandbox_vm.ssh("systemctl is-system-running --wait", check=False, timeout=300).stdout.strip()
    assert state in ("running", "degraded"), state
    failed = sandbox_vm.ssh("systemctl --failed --no-legend --plain").stdout.strip()
    assert failed == "", failed


def test_sshd_answers_on_the_loopback_forward(sandbox_vm):
    with socket.create_connection((sandbox_vm.addr, sandbox_vm.ssh_port), timeout=15) as sock:
        sock.settimeout(15)
        banner = sock.recv(256)
    assert banner.startswith(b"SSH-2.0-OpenSSH"), banner
    assert sandbox_vm.ssh("id -u").stdout.strip() == "0"


def test_decoys_listen_on_3001_8001_and_the_squatter_on_4000(sandbox_vm):
    listening = sandbox_vm.ssh("ss -Hltn").stdout
    local = {line.split()[3] for line in listening.splitlines() if line.strip()}
    for port in (3001, 8001, 4000):  # 4000: the first candidate port of the deploy, taken on purpose
        assert f"0.0.0.0:{port}" in local, listening
    units = "decoy-3001.service decoy-8001.service decoy-4000.service"
    assert sandbox_vm.ssh(f"systemctl is-active {units}").stdout.split() == ["active"] * 3
    assert sandbox_vm.ssh(f"systemctl is-enabled {units}").stdout.split() == ["enabled"] * 3


def test_docker_is_absent(sandbox_vm):
    if os.environ.get("SANDBOX_VARIANT", "plain") != "plain":
        pytest.skip("variant with docker preinstalled")
    assert sandbox_vm.ssh("command -v docker dockerd containerd", check=False).returncode != 0
    assert sandbox_vm.ssh("dpkg-query -W docker.io docker-ce", check=False).returncode != 0


def test_python3_for_ansible(sandbox_vm):
    out = sandbox_vm.ssh("python3 -c 'import sys, apt; print(*sys.version_info[:2])'").stdout
    assert out.split() == ["3", "11"]
    assert sandbox_vm.ssh("command -v sudo curl ss").returncode == 0


def test_https_from_the_guest(sandbox_vm):
    # Through the intercepting proxy: the guest must trust this machine's CA.
    res = sandbox_vm.ssh(
        "curl -fsS --max-time 60 -o /dev/null -w '%{http_code}' "
        "https://deb.debian.org/debian/dists/bookworm/InRelease",
        check=False, timeout=120,
    )
    assert res.returncode == 0 and res.stdout == "200", res
    res = sandbox_vm.ssh(
        "curl -fsS --max-time 60 -o /dev/null -w '%{http_code}' https://pypi.org/simple/pip/",
        check=False, timeout=120,
    )
    assert res.returncode == 0 and res.stdout == "200", res
    sources = sandbox_vm.ssh("apt-get indextargets --format '$(SITE) $(RELEASE)' | sort -u").stdout
    for suite in ("bookworm", "bookworm-updates", "bookworm-security"):
        assert re.search(rf"deb\.debian\.org/debian(-security)? {suite}\b", sources), sources


def test_app_port_is_forwarded_one_to_one(sandbox_vm):
    # The last forwarded port nothing in the guest listens on yet.
    listening = sandbox_vm.ssh("ss -Hltn").stdout
    port = next(p for p in reversed(sandbox_vm.port_range) if f":{p} " not in listening)
    sandbox_vm.ssh(
        f"mkdir -p /tmp/fwd && echo forwarded-{port} >/tmp/fwd/index.html && "
        f"(setsid timeout 90 python3 -m http.server {port} --bind 0.0.0.0 --directory /tmp/fwd "
        ">/dev/null 2>&1 </dev/null &)"
    )
    body, deadline = None, time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{sandbox_vm.addr}:{port}/", timeout=10) as resp:
                body = resp.read().decode().strip()
                break
        except OSError:
            time.sleep(2)
    sandbox_vm.ssh(f"pkill -f 'http.server {port}'", check=False)
    assert body == f"forwarded-{port}"


def test_inventory_works_with_ansible(sandbox_vm):
    text = sandbox_vm.inventory_path.read_text()
    assert sandbox_vm.addr == "127.0.0.2", "the sandbox must not sit on 127.0.0.1 (a VPS is another host)"
    assert re.search(rf"^sandbox ansible_host=127\.0\.0\.2 ansible_port={sandbox_vm.ssh_port} ", text, re.M)
    assert "app_public_host=127.0.0.2" in text and "ansible_user=root" in text
    key = sandbox_vm.key_path
    assert key.exists() and stat.S_IMODE(key.stat().st_mode) == 0o600
    ansible = shutil.which("ansible") or os.path.join(os.path.dirname(sys.executable), "ansible")
    if not os.path.exists(ansible):
        pytest.skip("ansible not installed in this environment")
    res = subprocess.run(
        [ansible, "-i", str(sandbox_vm.inventory_path), "sandbox", "-m", "ansible.builtin.ping"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_NOCOLOR": "1"},
    )
    assert res.returncode == 0 and '"ping": "pong"' in res.stdout, res.stdout + res.stderr


def test_real_reboot_comes_back(sandbox_vm):
    before = sandbox_vm.boot_id()
    seconds = sandbox_vm.reboot(timeout=400)
    assert sandbox_vm.boot_id() != before
    print(f"reboot to SSH: {seconds:.0f}s")
    sandbox_vm.ssh("systemctl is-system-running --wait", check=False, timeout=300)
    listening = sandbox_vm.ssh("ss -Hltn").stdout
    assert "0.0.0.0:3001" in listening and "0.0.0.0:8001" in listening
