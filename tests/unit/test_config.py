"""Settings: defaults, TP_* variables, flags, and the README's configuration table staying true."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
from tornado_phoenix.cli import build_parser
from tornado_phoenix.config import OPTIONS, Settings, SettingsError

README = Path(__file__).resolve().parents[2] / "README.md"


def test_option_defaults_match_settings():
    defaults = {field.name: field.default for field in fields(Settings)}
    assert {option.name: option.default for option in OPTIONS} == defaults


def test_env_then_flags():
    settings = Settings.from_env({"TP_PORT": "4100", "TP_IDLE_TIMEOUT": "5"}, port=4200)
    assert (settings.port, settings.idle_timeout) == (4200, 5.0)


@pytest.mark.parametrize("env,needle", [
    ({"TP_PORT": "abc"}, "TP_PORT='abc'"),
    ({"TP_LOG_LEVEL": "loud"}, "TP_LOG_LEVEL"),
    ({"TP_IDLE_TIMEOUT": "0"}, "TP_IDLE_TIMEOUT"),
    ({"TP_SOCKET_PATH": "socket"}, "TP_SOCKET_PATH"),
])
def test_bad_values_name_the_variable(env, needle):
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env)
    assert needle in str(err.value)


def test_every_option_is_a_flag_and_in_the_readme_table():
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]
    flags = {action.option_strings[0] for action in serve._actions if action.option_strings}
    table = README.read_text()
    for option in OPTIONS:
        flag = "--" + option.name.replace("_", "-")
        assert flag in flags
        assert re.search(rf"\| `{flag}` \| `{option.env}` \|", table), f"README configuration table lacks {option.env}"
