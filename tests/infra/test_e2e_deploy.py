"""End to end: the deploy bundle against a fresh sandbox VPS (a real Debian VM with systemd, over SSH).

One VM for the whole story, in the order a user meets it, through the same `make` targets a user types, with the
arguments a user types: `HOST=127.0.0.2 SSH_PORT=2222 SSH_KEY=<key>` (the VM sits on 127.0.0.2, not 127.0.0.1,
and squats the first candidate port 4000 besides the decoys on 3001 and 8001, so the deploy must choose 4001):
fresh VM (no Docker) → deploy → verify → redeploy (changed=0, same port, same container start) → a deploy with a
bad setting fails and leaves the running version alone → reboot-check → the app's port taken by someone else →
redeploy picks a new free port and records it → a second release built on the host (app_build_on_host) →
rollback to the first → remove (nothing of the app left, decoys and the squatter untouched).

The VM has 2 vCPUs, so the deploy runs 2 workers and Redis next to the app (its own unit and container on a private
network, a password generated once): checked along the same phases, with no phase of its own — the fresh deploy
brings Redis, the unchanged redeploy keeps its password and container, the reboot brings it back (verify's
cross-worker broadcast runs after it), the redeploys and the rollback leave it running, remove takes it away and
keeps its data directory.

Durations of every phase are printed and written to tests/artifacts/e2e-timings.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.infra import yjs_doc

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
FACT = "/etc/ansible/facts.d/tornado_phoenix.fact"
REDIS = "tornado-phoenix-redis"
DOC_TEXT = "written before the redeploy and the reboot"
MAKE_TIMEOUT = 1800


class Timings(dict):
    def write(self) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "e2e-timings.json").write_text(json.dumps(self, indent=2) + "\n")


@pytest.fixture(scope="module")
def timings():
    t = Timings()
    start = time.monotonic()
    yield t
    t["total_test_s"] = round(time.monotonic() - start, 1)
    t.write()
    print("\ne2e timings (s): " + ", ".join(f"{k}={v}" for k, v in t.items()))


def make(vm, timings: Timings, phase: str, target: str, *variables: str, check: bool = True,
         extra_env: dict[str, str] | None = None) -> str:
    """Run `make TARGET` against the sandbox VM; return the output without colours."""
    argv = [
        "make", "--no-print-directory", "-C", str(REPO), target, *user_args(vm), "ANSIBLE_COLOR=0", *variables,
    ]
    print(f"\n=== {phase}: {' '.join(argv)}", flush=True)
    t0 = time.monotonic()
    # profile_tasks: every task's duration in the phase logs (tests/artifacts/e2e-*.log).
    env = {**os.environ, "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks", **(extra_env or {})}
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=MAKE_TIMEOUT,
                          env=env)
    timings[phase] = round(time.monotonic() - t0, 1)
    out = ANSI.sub("", proc.stdout)
    (ARTIFACTS).mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"e2e-{phase}.log").write_text(out)
    print("\n".join(out.splitlines()[-12:]), flush=True)
    if check and proc.returncode != 0:
        pytest.fail(f"make {target} ({phase}) exited {proc.returncode}:\n{out[-8000:]}")
    if not check and proc.returncode == 0:
        pytest.fail(f"make {target} ({phase}) was expected to fail but passed:\n{out[-4000:]}")
    return out


def recap(out: str) -> dict[str, int]:
    line = next(ln for ln in reversed(out.splitlines()) if re.match(r"^(?!localhost\b)\S+\s+:\s+ok=", ln))
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def user_args(vm) -> list[str]:
    """What a user with a fresh VPS types: the address, the SSH port and the key, nothing else; plus the locally
    made base image (no registry here) and a known_hosts of this session (a rebuilt VM disk has new host keys)."""
    known_hosts = vm.state_dir / "known_hosts"
    return [f"HOST={vm.addr}", f"SSH_PORT={vm.ssh_port}", f"SSH_KEY={vm.key_path}",
            "BASE_IMAGE=tornado-phoenix-base:bookworm", f"SSH_KNOWN_HOSTS={known_hosts}"]


def result_line(out: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith("result: ")]
    assert len(lines) == 1, f"expected exactly one result line:\n{out[-3000:]}"
    last = out.rstrip().splitlines()[-1]
    assert last == lines[0] or re.match(r"make(\[\d+\])?: \*\*\*", last), last
    return lines[0]


def fact(vm) -> dict:
    return json.loads(vm.ssh(f"cat {FACT}").stdout)


def started_at(vm, container: str = "tornado-phoenix") -> str:
    return vm.ssh(f"docker inspect -f '{{{{.State.StartedAt}}}}' {container}").stdout.strip()


def secrets_digest(vm) -> str:
    return vm.ssh("sha256sum /etc/tornado-phoenix/secrets").stdout.split()[0]


def verified_all(line: str) -> None:
    """verify ran every check: with 2 workers and Redis none is skipped (the cross-worker broadcast included)."""
    assert " passed" in line and "skipped" not in line and "failed" not in line, line


def health(vm, port: int) -> dict:
    code = f"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/health', timeout=5).read().decode())"
    return json.loads(vm.ssh(f'python3 -c "{code}"').stdout)


def listening(vm, port: int) -> bool:
    return bool(vm.ssh(f"ss -Htln 'sport = :{port}'").stdout.strip())


def test_deploy_lifecycle_on_a_fresh_vps(sandbox_vm, base_image, timings):
    vm = sandbox_vm
    timings["vm_boot_s"] = round(vm.last_boot_seconds or 0, 1)
    first, last = vm.port_range[0], vm.port_range[-1]
    # Pinned once, so commits landing during the run cannot turn a redeploy into a new release.
    revision = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=7", "HEAD"], capture_output=True,
                              text=True).stdout.strip() or "nogit"
    pin = f"ANSIBLE_ARGS=-e tornado_phoenix_revision={revision}"

    assert vm.ssh("command -v docker", check=False).returncode != 0, "the sandbox must start without Docker"
    assert listening(vm, 3001) and listening(vm, 8001), "decoy services missing in the sandbox"
    assert listening(vm, 4000), "the squatter on the first candidate port is missing in the sandbox"
    addr = vm.addr
    assert addr != "127.0.0.1"
    (vm.state_dir / "known_hosts").unlink(missing_ok=True)

    # 1. Fresh VPS: installs Docker, ships the image, chooses the first free port (4001), verifies from outside
    #    by dialing the typed address. Exit 0 on the first try.
    out = make(vm, timings, "deploy_fresh", "deploy", pin)
    app = fact(vm)
    port = app["port"]
    assert port == 4001, f"3001, 8001 and 4000 are taken: the deploy must choose 4001, not {port}"
    assert app["version"].endswith(f"+{revision}")
    line = result_line(out)
    assert line.startswith(f"result: deployed {app['version']} to {addr}:{port} — ws://{addr}:{port}/socket; ")
    assert f"verified {addr}:" in line and " passed" in line
    verified_all(line)
    env = vm.ssh("cat /etc/tornado-phoenix/tornado-phoenix.env").stdout
    assert "TP_FAULTS=off" in env and "TP_YJS_STORE=sqlite:////var/lib/tornado-phoenix/yjs.sqlite3" in env
    # 2 vCPUs: 2 workers and the Redis container, reached by name on the private network with its password.
    assert app["workers"] == 2 and app["pubsub"] == "redis-container" and app["redis_service"] == REDIS, app
    assert "TP_WORKERS=2" in env.splitlines()
    assert re.search(rf"^TP_PUBSUB=redis://:[0-9a-f]{{64}}@{REDIS}:6379/0$", env, re.M), "no TP_PUBSUB to the container"
    assert vm.ssh(f"systemctl is-active {REDIS}").stdout.strip() == "active"
    assert not listening(vm, 6379), "Redis must publish no port"
    # One tarball for both images (the base layers once).
    assert len(re.findall(r"TASK \[tornado_phoenix : Load the images on the host\.\]", out)) == 1
    assert vm.ssh(f"docker images {REDIS} -q").stdout.strip(), "the Redis image did not reach the host"
    secrets_1 = secrets_digest(vm)
    assert vm.ssh("stat -c %u /var/lib/tornado-phoenix").stdout.strip() == "10001"
    vm.ssh("docker exec tornado-phoenix sh -c 'echo kept > /var/lib/tornado-phoenix/e2e-marker'")
    # A real Yjs update (pycrdt) through room:*, read back after the redeploys, the reboot and the rollback.
    asyncio.run(yjs_doc.write(f"ws://{addr}:{port}/socket", "room:e2e", DOC_TEXT))

    # 1b. A standalone verify with the same arguments (the key reaches testinfra through the inventory).
    out = make(vm, timings, "verify", "verify")
    assert result_line(out).startswith(f"result: verified {addr}:")

    # 1c. The VPS was "rebuilt": known_hosts holds another key for it. One line says what to do.
    known_hosts = vm.state_dir / "known_hosts"
    saved_known_hosts = known_hosts.read_text()
    other_key = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(vm.state_dir / "other"),
                                "-C", "other"], capture_output=True)
    assert other_key.returncode == 0
    other_pub = (vm.state_dir / "other.pub").read_text().split()[:2]
    known_hosts.write_text(f"[{addr}]:{vm.ssh_port} {' '.join(other_pub)}\n")
    # A fresh SSH control socket: a live ControlMaster from the previous phase would skip the host key check.
    control_dir = vm.state_dir / "cp-host-key"
    control_dir.mkdir(exist_ok=True)
    out = make(vm, timings, "status_host_key_changed", "status", check=False,
               extra_env={"ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir)})
    assert result_line(out).startswith(
        f"result: the host key of {addr} changed: if you rebuilt the VPS, run ssh-keygen -R '[{addr}]:{vm.ssh_port}'")
    known_hosts.write_text(saved_known_hosts)
    start_1 = started_at(vm)
    redis_start_1 = started_at(vm, REDIS)

    # 2. Unchanged second run: nothing changes, nothing restarts.
    out = make(vm, timings, "redeploy_unchanged", "deploy", pin)
    assert recap(out)["changed"] == 0, "an unchanged redeploy must report changed=0"
    assert fact(vm)["port"] == port
    assert started_at(vm) == start_1, "an unchanged redeploy restarted the container"
    assert started_at(vm, REDIS) == redis_start_1, "an unchanged redeploy restarted Redis"
    assert secrets_digest(vm) == secrets_1, "a redeploy changed the Redis password (or the signing key)"

    # 3. A setting that makes the server exit: the deploy fails with the server's log and the running
    #    version keeps serving with its old settings.
    bad = 'ANSIBLE_ARGS=-e tornado_phoenix_revision=' + revision + \
        " -e '{\"tornado_phoenix_env\":{\"TP_MAX_FRAME_SIZE\":\"-5\"}}' -e tornado_phoenix_health_timeout=40"
    out = make(vm, timings, "deploy_bad_setting", "deploy", bad, check=False)
    assert "did not answer /health" in out
    assert "TP_MAX_FRAME_SIZE" in out, "the failure must show the server's own log lines"
    assert "was restored" in out and "is healthy" in out
    assert health(vm, port)["status"] == "ok"
    assert "TP_MAX_FRAME_SIZE" not in vm.ssh("cat /etc/tornado-phoenix/tornado-phoenix.env").stdout
    assert fact(vm) == app

    # 4. A real reboot: the boot id changes and the app comes back by itself.
    boot_before = vm.boot_id()
    out = make(vm, timings, "reboot_check", "reboot-check", pin)
    assert vm.boot_id() != boot_before
    assert f"back on port {port}" in out and f"verified {addr}:" in result_line(out)
    # Redis came back by itself, before the app, and verify's cross-worker broadcast went through it.
    verified_all(result_line(out))
    assert vm.ssh(f"systemctl is-active {REDIS}").stdout.strip() == "active"
    boot = int(vm.ssh("awk '/^btime/ {print $2}' /proc/stat").stdout)
    redis_started = int(vm.ssh(f"date -d \"$(docker inspect -f '{{{{.State.StartedAt}}}}' {REDIS})\" +%s").stdout)
    assert redis_started >= boot, "the Redis container is not from this boot"
    assert secrets_digest(vm) == secrets_1
    redis_start_2 = started_at(vm, REDIS)
    assert vm.ssh("cat /var/lib/tornado-phoenix/e2e-marker").stdout.strip() == "kept", "the data dir must survive"
    assert asyncio.run(yjs_doc.read(f"ws://{addr}:{port}/socket", "room:e2e")) == DOC_TEXT

    # 5. The app is stopped and another program takes its port: the next deploy moves to a free port.
    vm.ssh("systemctl stop tornado-phoenix && "
           f"systemd-run --unit tp-e2e-squatter python3 -m http.server --bind 0.0.0.0 {port}")
    deadline = time.monotonic() + 60
    while not listening(vm, port):
        assert time.monotonic() < deadline, "the squatter did not start listening"
        time.sleep(1)
    out = make(vm, timings, "deploy_port_taken", "deploy", pin)
    moved = fact(vm)
    new_port = moved["port"]
    assert new_port != port and first <= new_port <= last and new_port not in (3001, 8001, 4000)
    assert f"previous port {port} is taken by something else" in out
    assert f"ws://{addr}:{new_port}/socket" in result_line(out)
    assert listening(vm, port), "the deploy must leave the other program alone"

    # 6. A second release, built on the host from a copied build context (app_build_on_host). The host's
    #    Docker has no registry either: give it the same locally made base image first.
    t0 = time.monotonic()
    subprocess.run(
        f"docker save {base_image} | gzip -1 | ssh -F {vm.ssh_config} -o BatchMode=yes sandbox "
        "'gunzip | docker load'", shell=True, check=True, timeout=900, capture_output=True)
    timings["load_base_image_into_vm"] = round(time.monotonic() - t0, 1)
    release_b = f"ANSIBLE_ARGS=-e tornado_phoenix_revision=b{revision[:6]}"
    out = make(vm, timings, "deploy_build_on_host", "deploy", "BUILD_ON_HOST=1", release_b)
    app_b = fact(vm)
    assert app_b["tag"].endswith(f"-b{revision[:6]}") and app_b["previous_tag"] == app["tag"]
    assert app_b["port"] == new_port
    assert f"verified {addr}:" in result_line(out)

    # 7. Rollback: the first release again, same port.
    out = make(vm, timings, "rollback", "rollback")
    back = fact(vm)
    assert back["tag"] == app["tag"] and back["previous_tag"] == app_b["tag"] and back["port"] == new_port
    assert vm.ssh("docker inspect -f '{{.Config.Image}}' tornado-phoenix").stdout.strip() == app["image"]
    assert health(vm, new_port)["status"] == "ok"
    assert f"rolled back {addr} to {app['version']}" in result_line(out)
    assert vm.ssh("cat /var/lib/tornado-phoenix/e2e-marker").stdout.strip() == "kept"
    assert asyncio.run(yjs_doc.read(f"ws://{addr}:{new_port}/socket", "room:e2e")) == DOC_TEXT
    # The redeploys (new port, built on the host) and the rollback changed the app only: Redis kept running.
    assert started_at(vm, REDIS) == redis_start_2, "a redeploy or the rollback restarted Redis"
    workers = health(vm, new_port)["workers"]
    assert len(workers) == 2 and all(w["pubsub"]["connected"] for w in workers), workers

    # 8. Remove: nothing of the app remains; Docker, the decoys and the squatter are untouched.
    out = make(vm, timings, "remove", "remove")
    assert f"removed tornado-phoenix from {addr}" in result_line(out) and "data kept in" in out
    assert vm.ssh("cat /var/lib/tornado-phoenix/e2e-marker").stdout.strip() == "kept", "remove keeps the data"
    assert "/var/lib/tornado-phoenix-redis" in result_line(out), "remove keeps Redis's data too"
    assert vm.ssh("test -d /var/lib/tornado-phoenix-redis && echo kept").stdout.strip() == "kept"
    gone = vm.ssh(f"systemctl list-unit-files '{REDIS}*' --no-legend; docker ps -a --filter name={REDIS} -q; "
                  f"docker images {REDIS} -q; docker network ls --filter name=^tornado-phoenix$ -q; "
                  "ls /etc/tornado-phoenix 2>/dev/null", check=False).stdout.strip()
    assert gone == "", f"Redis left behind after remove:\n{gone}"
    out = make(vm, timings, "remove_purge", "remove", "PURGE=1")
    leftovers = vm.ssh(
        "ls /etc/systemd/system/tornado-phoenix.service /etc/tornado-phoenix /var/lib/tornado-phoenix "
        f"/var/cache/tornado-phoenix /etc/systemd/system/{REDIS}.service /var/lib/{REDIS} "
        f"{FACT} 2>/dev/null; docker ps -a --filter name=tornado-phoenix -q; "
        f"docker images tornado-phoenix -q; docker images {REDIS} -q; "
        "systemctl list-unit-files 'tornado-phoenix*' --no-legend",
        check=False).stdout.strip()
    assert leftovers == "", f"left behind after remove:\n{leftovers}"
    assert not listening(vm, new_port)
    assert listening(vm, 3001) and listening(vm, 8001) and listening(vm, port)
    assert vm.ssh("systemctl is-active docker").stdout.strip() == "active"
    assert vm.ssh(f"docker image inspect {base_image} >/dev/null && echo kept").stdout.strip() == "kept"
