"""On the host: Docker, the unit, the hardened container, the port, the decoys and /health."""

from __future__ import annotations

import json

import pytest

DECOY_PORTS = (3001, 8001)


def listening(host, port: int) -> bool:
    return bool(host.check_output(f"ss -Htln 'sport = :{port}'").strip())


def test_docker_is_enabled_and_running(host):
    docker = host.service("docker")
    assert docker.is_enabled
    assert docker.is_running


def test_unit_is_enabled_and_active(host, app):
    unit = host.service(app["service"])
    assert unit.is_enabled, f"{app['service']} is not enabled: it would not come back after a reboot"
    assert unit.is_running


def test_unit_supervises_a_foreground_container(host, app):
    props = host.service(app["service"]).systemd_properties
    assert props["Restart"] == "always"
    assert "docker.service" in props["Requires"]
    assert "network-online.target" in props["After"]
    unit = host.file(f"/etc/systemd/system/{app['service']}.service").content_string
    assert "docker run --rm --init --name" in unit
    assert " -d " not in unit and "--detach" not in unit


def test_stop_timeout_is_longer_than_the_containers(host, app):
    props = host.service(app["service"]).systemd_properties
    unit = host.file(f"/etc/systemd/system/{app['service']}.service").content_string
    stop_time = int(unit.split("--stop-timeout ", 1)[1].split()[0])
    timeout_usec = int(props["TimeoutStopUSec"].rstrip("s")) if props["TimeoutStopUSec"].rstrip("s").isdigit() \
        else None
    if timeout_usec is None:  # systemd prints e.g. "30s" or "1min 30s"
        assert f"TimeoutStopSec={stop_time + 20}" in unit
    else:
        assert timeout_usec > stop_time


@pytest.fixture(scope="module")
def container(host, app):
    out = host.check_output(f"docker inspect {app['container']}")
    return json.loads(out)[0]


def test_container_runs_the_recorded_image(container, app):
    assert container["State"]["Running"]
    assert container["Config"]["Image"] == app["image"]
    assert container["Image"] == app["image_id"]


def test_container_is_hardened(container):
    hc = container["HostConfig"]
    assert container["Config"]["User"] not in ("", "0", "root", "0:0")
    assert hc["ReadonlyRootfs"] is True
    assert hc["CapDrop"] in (["ALL"], ["all"])
    assert any(opt.startswith("no-new-privileges") for opt in hc["SecurityOpt"] or [])
    assert hc["PidsLimit"] and hc["PidsLimit"] > 0
    assert hc["Memory"] > 0
    assert "/tmp" in (hc["Tmpfs"] or {})
    assert hc["Init"] is True
    assert hc["AutoRemove"] is True
    assert hc["RestartPolicy"]["Name"] in ("", "no"), "systemd must be the only supervisor"
    assert hc["LogConfig"]["Config"].get("max-size")


def test_server_process_is_not_root(host, app):
    assert host.check_output(f"docker exec {app['container']} id -u").strip() != "0"


def test_env_file_is_root_only(host):
    env = host.file("/etc/tornado-phoenix/tornado-phoenix.env")
    assert env.user == "root"
    assert env.mode == 0o600


def test_chosen_port_listens_and_is_not_a_decoy(host, app):
    assert app["port"] not in DECOY_PORTS
    assert listening(host, app["port"]), f"nothing listens on the recorded port {app['port']}"


@pytest.mark.parametrize("port", DECOY_PORTS)
def test_other_services_still_listen(host, port):
    assert listening(host, port), f"the service on {port} stopped listening"


def test_health_answers_on_the_published_port(host, app):
    code = (
        "import json, urllib.request; "
        f"r = urllib.request.urlopen('http://127.0.0.1:{app['port']}/health', timeout=5); "
        "print(r.status, r.read().decode())"
    )
    status, body = host.check_output(f'python3 -c "{code}"').split(" ", 1)
    assert status == "200"
    health = json.loads(body)
    assert health["status"] == "ok"
    assert app["version"].split("+")[0] == health["version"].split("+")[0]


def test_container_started_after_boot(host, app):
    # After a reboot this proves systemd started the container again (it is not a leftover).
    boot = int(host.check_output("awk '/^btime/ {print $2}' /proc/stat"))
    started = int(host.check_output(f"date -d \"$(docker inspect -f '{{{{.State.StartedAt}}}}' {app['container']})\" +%s"))
    assert started >= boot
