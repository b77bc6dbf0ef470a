#!/usr/bin/env python3
"""Run one deploy command (ansible-playbook, ansible) and end with exactly one `result:` line, also on failure.

Used by every deploy target of mk/deploy.mk:

    python3 scripts/deploy_result.py --action deploy --host 203.0.113.10 --port 22 \
        --results build/results --log build/results/deploy.log -- ansible-playbook ...

The command's output streams through unchanged (and is saved to --log). Then:

- it passed: the result lines the play saved in --results (`*.deploy`, `*.verify`, ...) are printed;
- SSH refused the host key:  ``result: the host key of HOST changed: if you rebuilt the VPS, run ssh-keygen -R HOST``
- SSH did not connect:       ``result: cannot reach HOST over SSH: Connection refused; check ...``
- the rollout passed but the testinfra verification did not:
  ``result: deployed 0.3.0 (abc1234) to HOST:4001 but verification failed: test_probe_from_outside, <why>;
  the app is running on port 4001``
- anything else: ``result: deploy FAILED for HOST at task "<task>": <message>``.

The exit status is the command's (0 stays 0), so make still fails when the deploy did.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Which saved result files each action prints on success, in order.
RESULT_FILES = {
    "deploy": ["deploy", "verify"],
    "verify": ["verify"],
    "reboot-check": ["reboot", "verify"],
    "status": ["status"],
    "rollback": ["rollback"],
    "remove": ["remove"],
    "logs": [],
}


def _one_line(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ssh_reason(log: str) -> str | None:
    """The SSH error of an UNREACHABLE host, e.g. 'Connection refused', or None."""
    for pattern in (
        r"ssh: connect to host \S+ port \d+: ([^\"\\\n]+)",
        r"ssh: Could not resolve hostname \S+: ([^\"\\\n]+)",
        r"(Permission denied \([^)]*\))",
        r"(Connection timed out during banner exchange)",
        r"(Connection closed by \S+ port \d+)",
        r"(kex_exchange_identification: [^\"\\\n]+)",
    ):
        m = re.search(pattern, log)
        if m:
            return m.group(1).strip().rstrip(".")
    m = re.search(r"UNREACHABLE! => .*?\"msg\": \"([^\"]+)\"", log, re.S) or re.search(
        r"UNREACHABLE!.*?msg: ['\"]?([^\n]+)", log, re.S
    )
    return _one_line(m.group(1)) if m else None


def _hint(reason: str, host: str, port: str, user: str) -> str:
    if reason.startswith("Permission denied"):
        return (
            f"check that the key is allowed for {user}@{host} (SSH_KEY=path/to/key, or load it with ssh-add) "
            f"and SSH_USER= (now {user})"
        )
    if "resolve hostname" in reason or "Name or service not known" in reason:
        return f"check the spelling of HOST={host}"
    if "refused" in reason:
        return f"check the address and that sshd listens on port {port} (SSH_PORT=, now {port})"
    return (
        f"check the address, that the VPS is running, that sshd listens on port {port} (SSH_PORT=) "
        "and that no firewall blocks it"
    )


def _known_hosts_name(host: str, port: str) -> str:
    return host if port in ("", "22") else f"'[{host}]:{port}'"


def _verify_failure(log: str) -> str | None:
    """'<check>, <why>' from pytest's short summary inside the testinfra report, or None."""
    if "testinfra checks failed" not in log and "FAILED tests/infra/verify" not in log:
        return None
    m = re.search(r"(?:FAILED|ERROR) \S*tests/infra/verify/\S+?::(\w+)(?:\[[^\]]*\])? - ([^\n]+)", log)
    if m:
        why = m.group(2).replace("\\n", " ").replace('\\"', '"')
        return f"{m.group(1)}, {_one_line(why, 200)}"
    m = re.search(r"(?:FAILED|ERROR) \S*tests/infra/verify/\S+?::(\w+)", log)
    if m:
        # The probe's JSON report: the detail of its first failed step; else pytest's first "E   " line.
        detail = re.search(r'"status": "FAIL",(?:\s|E)*"ms": [^,]*,(?:\s|E)*"detail": "((?:[^"\\]|\\.)*)"', log)
        if detail:
            return f"{m.group(1)}, {_one_line(detail.group(1), 200)}"
        first = re.search(r"^E\s+(.+)$", log, re.M)
        return f"{m.group(1)}, {_one_line(first.group(1), 200) if first else 'see the testinfra report above'}"
    return "the testinfra run, see its report above"


def _failed_task(log: str) -> tuple[str, str]:
    """The name and message of the last failed task."""
    task = ""
    message = ""
    current = ""
    for line in log.splitlines():
        m = re.match(r"TASK \[(.*)\] \**", line)
        if m:
            current = m.group(1)
            continue
        if re.match(r"fatal: \[|failed: \[", line):
            task = current
            msg = re.search(r"\"msg\": \"((?:[^\"\\]|\\.)*)\"", line)
            message = msg.group(1) if msg else ""
    if not message:
        m = list(re.finditer(r"^\s*msg: [|>]?-?\s*(.*)$", log, re.M))
        if m:
            message = m[-1].group(1)
    if not message:
        m = list(re.finditer(r"^(ERROR!.*)$", log, re.M))
        if m:
            message = m[-1].group(1)
    return task, _one_line(message.replace("\\n", " "), 200)


def classify(action: str, host: str, port: str, user: str, log: str, saved: dict[str, str]) -> str:
    """The result line (without 'result: ') for a failed command's output."""
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in log or "Host key verification failed" in log:
        return (
            f"the host key of {host} changed: if you rebuilt the VPS, run ssh-keygen -R {_known_hosts_name(host, port)}"
            " (then run this again); if you did not, do not go on: someone may be in the middle"
        )
    verify = _verify_failure(log)
    if action == "deploy" and "deploy" in saved and verify:
        line = saved["deploy"].strip()
        m = re.search(r":(\d+)\b", line.split("—")[0])
        port_note = f"; the app is running on port {m.group(1)}" if m else ""
        return f"{line.split(' — ')[0]} but verification failed: {verify}{port_note}"
    if verify and action in ("verify", "reboot-check"):
        head = saved.get("reboot", "").strip()
        head = f"{head.split(' — ')[0]} but " if head else ""
        return f"{head}verification of {host} failed: {verify}"
    if "UNREACHABLE!" in log or re.search(r"ssh: connect to host|Permission denied \(", log):
        reason = _ssh_reason(log) or "no SSH connection"
        return f"cannot reach {host} over SSH: {reason}; {_hint(reason, host, port, user)}"
    task, message = _failed_task(log)
    where = f' at task "{task}"' if task else ""
    return f"{action} FAILED for {host}{where}: {message or 'see the Ansible output above'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--action", required=True, choices=sorted(RESULT_FILES))
    parser.add_argument("--host", required=True, help="what the user typed (HOST=) or a description")
    parser.add_argument("--port", default="22")
    parser.add_argument("--user", default="root")
    parser.add_argument("--results", default="build/results")
    parser.add_argument("--log", required=True)
    parser.add_argument("--success", default="", help="the result line for a passing command without saved files")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command

    os.makedirs(os.path.dirname(args.log) or ".", exist_ok=True)
    with open(args.log, "w", encoding="utf-8") as log_file:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            log_file.write(line)
        rc = proc.wait()
    with open(args.log, encoding="utf-8") as f:
        log = ANSI.sub("", f.read())

    saved: dict[str, str] = {}
    for kind in RESULT_FILES[args.action]:
        texts = [open(p, encoding="utf-8").read() for p in sorted(glob.glob(os.path.join(args.results, f"*.{kind}")))]
        if texts:
            saved[kind] = "".join(texts)

    if rc == 0:
        lines = [saved[k].strip() for k in RESULT_FILES[args.action] if k in saved]
        if args.success:
            lines.append(args.success)
        if not lines:
            lines = [f"{args.action} finished for {args.host}, but the play saved no result (see the output above)"]
            rc = 1
        # One line per host and kind, joined: the run ends with exactly one `result:` line.
        print("result: " + "; ".join(x.strip() for text in lines for x in text.splitlines() if x.strip()))
        return rc
    print(f"result: {classify(args.action, args.host, args.port, args.user, log, saved)}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
