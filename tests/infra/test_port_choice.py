"""Unit tests for the tornado_phoenix role's port choice (the filter plugin's pure functions)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

PLUGIN = (
    Path(__file__).resolve().parents[2]
    / "ansible/roles/tornado_phoenix/filter_plugins/tornado_phoenix_ports.py"
)
_spec = importlib.util.spec_from_file_location("tornado_phoenix_ports", PLUGIN)
ports = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ports)

APP = "tornado-phoenix"

SS_SAMPLE = """\
LISTEN 0      4096   127.0.0.53%lo:53        0.0.0.0:*
LISTEN 0      128          0.0.0.0:22        0.0.0.0:*
LISTEN 0      5            0.0.0.0:3001      0.0.0.0:*
LISTEN 0      5                  *:8001            *:*
LISTEN 0      4096         0.0.0.0:4000      0.0.0.0:*
LISTEN 0      4096            [::]:4000         [::]:*
LISTEN 0      128             [::]:22           [::]:*
"""


def choose(listening=(), published=None, **kw):
    kw.setdefault("container", APP)
    return ports.choose_port(listening, published or {}, **kw)


def test_parse_ss_collects_every_listening_port_once():
    assert ports.parse_ss_listening(SS_SAMPLE) == [22, 53, 3001, 4000, 8001]


def test_parse_ss_ignores_blank_and_garbage():
    assert ports.parse_ss_listening("") == []
    assert ports.parse_ss_listening("\nnonsense\nLISTEN 0 5 nocolon *:*\n") == []


def test_parse_published_ports_reads_tcp_host_ports_of_every_container():
    text = "\n".join([
        '/tornado-phoenix|{"4000/tcp":[{"HostIp":"","HostPort":"4003"}]}',
        '/other|{"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"4001"},{"HostIp":"::","HostPort":"4001"}],'
        '"53/udp":[{"HostIp":"","HostPort":"4002"}]}',
        "/stopped-no-ports|{}",
        "/nothing|null",
    ])
    assert ports.parse_published_ports(text) == {
        "tornado-phoenix": [4003],
        "other": [4001],
        "stopped-no-ports": [],
        "nothing": [],
    }


def test_parse_published_ports_reads_docker_inspect_json():
    text = json.dumps([
        {"Name": "/tornado-phoenix", "HostConfig": {"PortBindings": {"4000/tcp": [{"HostIp": "", "HostPort": "4002"}]}}},
        {"Name": "/db", "HostConfig": {"PortBindings": None}},
    ])
    assert ports.parse_published_ports(text) == {"tornado-phoenix": [4002], "db": []}
    assert ports.parse_published_ports("[]") == {}


def test_fresh_host_gets_first_port_of_range():
    assert choose(listening=[22, 3001, 8001]) == {"port": 4000, "reason": "first free port in 4000-4099"}


def test_listening_and_published_ports_are_skipped():
    result = choose(listening=[4000], published={"redis": [4001]})
    assert result["port"] == 4002


def test_excluded_ports_are_never_chosen_even_when_free():
    result = choose(range_start=3001, range_end=3003, exclude=[3001, 3002])
    assert result["port"] == 3003


def test_sticky_port_kept_when_free():
    result = choose(listening=[22], sticky=4007)
    assert result == {"port": 4007, "reason": "kept: the port recorded by the last deploy is free"}


def test_sticky_port_kept_when_held_by_this_app():
    # The running app shows up both as a listener (docker-proxy) and as a published port.
    result = choose(listening=[4005], published={APP: [4005]}, sticky=4005)
    assert result == {"port": 4005, "reason": "kept: the port this app already publishes"}


def test_sticky_port_abandoned_when_someone_else_listens():
    result = choose(listening=[4000], sticky=4000)
    assert result["port"] == 4001
    assert "previous port 4000 is taken" in result["reason"]


def test_sticky_port_abandoned_when_another_container_publishes_it():
    result = choose(published={"web": [4000]}, sticky=4000)
    assert result["port"] == 4001


def test_sticky_port_outside_new_range_moves_into_range():
    result = choose(sticky=5000, range_start=4000, range_end=4010)
    assert result["port"] == 4000
    assert "no longer allowed" in result["reason"]


def test_sticky_port_in_exclude_list_moves():
    result = choose(sticky=4000, exclude=[3001, 8001, 4000])
    assert result["port"] == 4001


def test_own_port_without_fact_is_reused_first():
    # The fact was lost but our container still publishes 4000: it is ours, so it is free for us.
    assert choose(listening=[4000], published={APP: [4000]})["port"] == 4000


def test_explicit_port_wins_over_sticky_and_range():
    result = choose(explicit=9000, sticky=4000)
    assert result == {"port": 9000, "reason": "explicit app_port"}


def test_explicit_port_as_string_from_extra_vars():
    assert choose(explicit="4010")["port"] == 4010


def test_explicit_port_held_by_this_app_is_fine():
    assert choose(listening=[4000], published={APP: [4000]}, explicit=4000)["port"] == 4000


def test_explicit_port_taken_by_another_process_fails_with_fix():
    with pytest.raises(ports.PortChoiceError, match=r"app_port=3001 is already in use.*leave app_port unset"):
        choose(listening=[3001], explicit=3001)


@pytest.mark.parametrize("unset", [None, "", 0, "0", "auto"])
def test_unset_explicit_values_mean_automatic(unset):
    assert choose(explicit=unset)["port"] == 4000


@pytest.mark.parametrize("bad", ["http", 70000, -1])
def test_invalid_explicit_port_fails(bad):
    with pytest.raises(ports.PortChoiceError):
        choose(explicit=bad)


def test_full_range_fails_naming_the_fix():
    with pytest.raises(ports.PortChoiceError, match=r"no free port in 4000-4002.*widen"):
        choose(listening=[4000, 4001], range_start=4000, range_end=4002, exclude=[4002])


def test_invalid_range_fails():
    with pytest.raises(ports.PortChoiceError, match="invalid"):
        choose(range_start=4100, range_end=4000)


def test_filter_module_exposes_the_filters():
    filters = ports.FilterModule().filters()
    assert set(filters) == {
        "tornado_phoenix_ss_ports",
        "tornado_phoenix_published_ports",
        "tornado_phoenix_choose_port",
        "tornado_phoenix_sections",
        "tornado_phoenix_image_ids",
        "tornado_phoenix_running_image",
        "tornado_phoenix_images_to_ship",
    }
    choose_filter = filters["tornado_phoenix_choose_port"]
    assert choose_filter([4000], {}, APP, None, None, 4000, 4099, [3001, 8001])["port"] == 4001


def test_end_to_end_from_raw_command_output():
    listening = ports.parse_ss_listening(SS_SAMPLE)
    published = ports.parse_published_ports('/tornado-phoenix|{"4000/tcp":[{"HostIp":"","HostPort":"4000"}]}')
    assert choose(listening=listening, published=published, sticky=4000)["port"] == 4000
    # The app was stopped and someone else took 4000: move to the next free port.
    assert choose(listening=listening, published={}, sticky=4000)["port"] == 4001


def test_survey_sections_and_helpers():
    survey = ports.parse_sections(
        "@@ss\nLISTEN 0 5 0.0.0.0:22 0.0.0.0:*\n@@containers\n"
        + json.dumps([{"Name": "/tornado-phoenix", "Image": "sha256:aaa", "State": {"Running": True}},
                      {"Name": "/old", "Image": "sha256:bbb", "State": {"Running": False}}])
        + "\n@@active\nactive\n@@images\ntornado-phoenix:0.1.0-abc1234 sha256:aaa\n"
        "tornado-phoenix:<none> sha256:ccc\n@@ufw\n"
    )
    assert ports.parse_ss_listening(survey["ss"]) == [22]
    assert survey["active"] == "active" and survey["ufw"] == ""
    assert ports.running_image(survey["containers"], "tornado-phoenix") == "sha256:aaa"
    assert ports.running_image(survey["containers"], "old") == ""
    assert ports.parse_image_ids(survey["images"]) == {"tornado-phoenix:0.1.0-abc1234": "sha256:aaa"}


def test_images_to_ship_are_the_ones_the_host_lacks_or_has_under_another_id():
    wanted = {"tornado-phoenix:0.1.0-abc": "sha256:app2", "tornado-phoenix-redis:1234": "sha256:redis1"}
    host_app = {"tornado-phoenix:0.1.0-abc": "sha256:app1", "tornado-phoenix:0.0.9-old": "sha256:old"}
    host_redis = {"tornado-phoenix-redis:1234": "sha256:redis1"}
    assert ports.images_to_ship(wanted, host_app, host_redis) == [
        {"key": "tornado-phoenix:0.1.0-abc", "value": "sha256:app2"}]
    # A fresh host: both, in the order given (one tarball, the shared base layers once).
    assert [item["key"] for item in ports.images_to_ship(wanted, {}, {})] == list(wanted)
    # Same names, same IDs: nothing to ship.
    assert ports.images_to_ship({"tornado-phoenix-redis:1234": "sha256:redis1"}, host_app, host_redis) == []
