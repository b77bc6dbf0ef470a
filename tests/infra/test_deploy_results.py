"""The deploy targets' one `result:` line, also on failure, without a VM: a real `make status` against a
loopback port where no sshd listens, the generated inventory (SSH_KEY / SSH_PORT / the typed address reach Ansible
and testinfra alike), and scripts/deploy_result.py's reading of Ansible output for the failures that need a real
host (a changed host key, a failed verification; the e2e test shows those against the sandbox VM too)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import deploy_result  # noqa: E402

ENV = {**os.environ, "NO_COLOR": "1", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "CI": "1"}


def make(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), *args],
        env=ENV, capture_output=True, text=True, timeout=timeout,
    )


def result_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("result: ")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_host_ends_with_cannot_reach(tmp_path):
    port = free_port()  # nothing listens there: ssh gets "Connection refused"
    proc = make("status", "HOST=127.0.0.1", f"SSH_PORT={port}", f"RESULTS={tmp_path}")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    lines = result_lines(out)
    assert len(lines) == 1, out[-3000:]
    assert lines[0].startswith("result: cannot reach 127.0.0.1 over SSH: Connection refused; check "), lines
    assert f"port {port}" in lines[0]
    assert re.match(r"result: |make(\[\d+\])?: \*\*\*", out.rstrip().splitlines()[-1]), out[-500:]


def test_unreadable_key_ends_with_a_result_line(tmp_path):
    proc = make("status", "HOST=127.0.0.1", f"SSH_KEY={tmp_path}/missing", f"RESULTS={tmp_path}")
    assert proc.returncode != 0
    assert result_lines(proc.stdout) == [
        f"result: cannot read the SSH key SSH_KEY={tmp_path}/missing; give the path of your private key "
        "(or leave SSH_KEY out and use ssh-agent)"
    ]


def test_inventory_carries_key_port_and_typed_address(tmp_path):
    key = tmp_path / "id_test"
    key.write_text("not a real key\n")
    proc = make("deploy-inventory", "HOST=203.0.113.10", f"SSH_KEY={key}", "SSH_PORT=2200", "SSH_USER=deploy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (REPO / "build/inventory/203.0.113.10.ini").read_text()
    line = [x for x in text.splitlines() if x.startswith("203.0.113.10 ")][0]
    assert "ansible_host=203.0.113.10" in line and "ansible_port=2200" in line
    assert "ansible_user=deploy" in line and "ansible_become=true" in line
    assert f"ansible_ssh_private_key_file={key}" in line
    # What verify's outside check dials, whatever a delegated task's ansible_host would say.
    assert "tornado_phoenix_public_host=203.0.113.10" in line


def test_verify_playbook_resolves_the_public_host_before_delegating():
    text = (REPO / "ansible/verify.yml").read_text()
    assert 'TP_VERIFY_PUBLIC_HOST: "{{ verify_public_host }}"' in text
    before_delegation = text.split("delegate_to: localhost")[0]
    assert "verify_public_host:" in before_delegation


def test_make_run_installs_only_the_runtime_lock(tmp_path):
    proc = make("-n", "run", f"VENV={tmp_path}/venv")
    assert proc.returncode == 0, proc.stderr
    assert "requirements/runtime.lock" in proc.stdout
    assert "dev.lock" not in proc.stdout and "ansible-galaxy" not in proc.stdout
    deploy = make("-n", "verify", f"VENV={tmp_path}/venv", "HOST=203.0.113.10")
    assert "requirements/dev.lock" in deploy.stdout


HOST_KEY_CHANGED = """\
TASK [Gathering Facts] *********************************************************
fatal: [127.0.0.2]: UNREACHABLE! => changed=false
  msg: |-
    Failed to connect to the host via ssh: @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
    @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
    @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
    IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
    Host key verification failed.
  unreachable: true
"""

VERIFY_FAILED = """\
TASK [Fail with the testinfra report.] *****************************************
fatal: [127.0.0.2]: FAILED! => changed=false
  msg: |-
    testinfra checks failed on 127.0.0.2:
    F......
    FAILED tests/infra/verify/test_outside.py::test_probe_from_outside - AssertionError: probe ws://127.0.0.2:4001/socket failed: connection reset
    1 failed, 6 passed in 9.12s
"""

PERMISSION_DENIED = """\
fatal: [203.0.113.10]: UNREACHABLE! => changed=false
  msg: 'Failed to connect to the host via ssh: root@203.0.113.10: Permission denied (publickey).'
  unreachable: true
"""


def test_changed_host_key_line():
    line = deploy_result.classify("deploy", "127.0.0.2", "2222", "root", HOST_KEY_CHANGED, {})
    assert line.startswith("the host key of 127.0.0.2 changed: if you rebuilt the VPS, run ssh-keygen -R '[127.0.0.2]:2222'")
    line = deploy_result.classify("status", "203.0.113.10", "22", "root", HOST_KEY_CHANGED, {})
    assert "run ssh-keygen -R 203.0.113.10 " in line


def test_verification_failed_after_rollout_line():
    saved = {"deploy": "deployed 0.3.0 (abc1234) to 127.0.0.2:4001 — ws://127.0.0.2:4001/socket\n"}
    line = deploy_result.classify("deploy", "127.0.0.2", "22", "root", VERIFY_FAILED, saved)
    assert line == (
        "deployed 0.3.0 (abc1234) to 127.0.0.2:4001 but verification failed: test_probe_from_outside, "
        "AssertionError: probe ws://127.0.0.2:4001/socket failed: connection reset; the app is running on port 4001"
    )


def test_permission_denied_line_names_the_key():
    line = deploy_result.classify("verify", "203.0.113.10", "22", "root", PERMISSION_DENIED, {})
    assert line.startswith("cannot reach 203.0.113.10 over SSH: Permission denied (publickey); check ")
    assert "SSH_KEY=" in line and "ssh-add" in line


def test_success_prints_one_result_line(tmp_path, capsys):
    (tmp_path / "h.deploy").write_text("deployed 0.3.0 to h:4001 — ws://h:4001/socket\n")
    (tmp_path / "h.verify").write_text("verified h: 7 passed in 3.1s\n")
    rc = deploy_result.main(["--action", "deploy", "--host", "h", "--results", str(tmp_path),
                             "--log", str(tmp_path / "log"), "--", "true"])
    out = capsys.readouterr().out
    assert rc == 0
    assert result_lines(out) == ["result: deployed 0.3.0 to h:4001 — ws://h:4001/socket; verified h: 7 passed in 3.1s"]


def test_failure_keeps_the_exit_status(tmp_path, capsys):
    rc = deploy_result.main(["--action", "status", "--host", "h", "--results", str(tmp_path),
                             "--log", str(tmp_path / "log"), "--", "sh", "-c", "echo 'ERROR! boom'; exit 4"])
    out = capsys.readouterr().out
    assert rc == 4
    assert re.fullmatch(r"result: status FAILED for h: ERROR! boom", result_lines(out)[0])


def test_verification_failed_line_from_a_real_verify_run():
    """Output of a real `make verify` against the sandbox VM whose probe dialed an address nothing serves."""
    log = (Path(__file__).parent / "data/verify_failed.log").read_text()
    saved = {"deploy": "deployed 0.1.0+aa5d527 to 127.0.0.2:4001 — ws://127.0.0.2:4001/socket\n"}
    line = deploy_result.classify("deploy", "127.0.0.2", "2222", "root", log, saved)
    assert line == (
        "deployed 0.1.0+aa5d527 to 127.0.0.2:4001 but verification failed: test_probe_from_outside, connection "
        "refused by 127.0.0.3:4001 (is the server running? right host and port?); the app is running on port 4001"
    )
