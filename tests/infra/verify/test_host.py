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


def assert_hardened(container: dict) -> None:
    """What both containers (the app and Redis) run with: a non-root user, a read-only root, no capabilities,
    no-new-privileges, a pids and a memory limit."""
    hc = container["HostConfig"]
    assert container["Config"]["User"] not in ("", "0", "root", "0:0")
    assert hc["ReadonlyRootfs"] is True
    assert hc["CapDrop"] in (["ALL"], ["all"])
    assert any(opt.startswith("no-new-privileges") for opt in hc["SecurityOpt"] or [])
    assert hc["PidsLimit"] and hc["PidsLimit"] > 0
    assert hc["Memory"] > 0


def test_container_is_hardened(container):
    assert_hardened(container)
    hc = container["HostConfig"]
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


# ---- Redis next to the app (several workers) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis(app):
    if not app.get("redis_service"):
        pytest.skip(f"no Redis container on this host (pub/sub: {app.get('pubsub', 'local')})")
    return app


@pytest.fixture(scope="module")
def redis_container(host, redis):
    return json.loads(host.check_output(f"docker inspect {redis['redis_container']}"))[0]


def test_redis_unit_is_enabled_and_active(host, redis):
    unit = host.service(redis["redis_service"])
    assert unit.is_enabled, f"{redis['redis_service']} is not enabled: it would not come back after a reboot"
    assert unit.is_running


def test_app_wants_redis_but_does_not_require_it(host, app, redis):
    props = host.service(app["service"]).systemd_properties
    name = f"{redis['redis_service']}.service"
    assert name in props["Wants"].split() and name in props["After"].split()
    # Not Requires/BindsTo: a stopped Redis must not stop the app (each worker keeps serving its own members).
    assert name not in props.get("Requires", "").split() and name not in props.get("BindsTo", "").split()


def test_redis_publishes_no_port(host, redis, redis_container):
    assert not redis_container["HostConfig"]["PortBindings"], redis_container["HostConfig"]["PortBindings"]
    assert not any(redis_container["NetworkSettings"]["Ports"].values()), redis_container["NetworkSettings"]["Ports"]
    assert list(redis_container["NetworkSettings"]["Networks"]) == [redis["redis_network"]]
    assert not listening(host, 6379), "something listens on 6379 on the host"


def test_redis_container_is_hardened(redis_container):
    assert_hardened(redis_container)
    assert redis_container["HostConfig"]["RestartPolicy"]["Name"] in ("", "no"), "systemd must be the only supervisor"


def test_redis_answers_ping_with_the_password_only(host, redis):
    assert host.run(f"docker exec {redis['redis_container']} redis-ping").rc == 0
    refused = host.run(f"docker exec {redis['redis_container']} redis-cli -h 127.0.0.1 ping")
    assert "NOAUTH" in refused.stdout + refused.stderr


def test_secret_files_are_root_only(host, redis):
    assert host.file("/etc/tornado-phoenix").mode == 0o700
    for path in ("/etc/tornado-phoenix/tornado-phoenix.env", "/etc/tornado-phoenix/secrets"):
        f = host.file(path)
        assert f.user == "root" and f.group == "root" and f.mode == 0o600, (path, f.user, f.group, oct(f.mode))
    conf = host.file("/etc/tornado-phoenix/redis.conf")
    # Readable by the Redis container's group (uid/gid 10002), never by others.
    assert conf.user == "root" and conf.mode == 0o640 and conf.gid == 10002, (conf.user, conf.gid, oct(conf.mode))


def test_redis_password_is_only_in_the_secret_files(host, app, redis, redis_container):
    secrets = dict(line.split("=", 1) for line in host.file("/etc/tornado-phoenix/secrets").content_string.split())
    password = secrets["redis_password"]
    assert len(password) >= 32
    env = host.file("/etc/tornado-phoenix/tornado-phoenix.env").content_string
    assert f"TP_PUBSUB=redis://:{password}@{redis['redis_container']}:6379/0" in env.splitlines()
    assert f"requirepass {password}" in host.file("/etc/tornado-phoenix/redis.conf").content_string.splitlines()
    for unit in (app["service"], redis["redis_service"]):
        assert password not in host.file(f"/etc/systemd/system/{unit}.service").content_string
    assert password not in host.check_output("ps -eo args"), "the Redis password is on a command line"
    assert password not in json.dumps([redis_container["Args"], redis_container["Config"]["Cmd"]])
