"""Static checks of the deploy bundle: ansible-lint (production profile) and --syntax-check of every playbook."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
BIN = Path(sys.executable).parent
PLAYBOOKS = sorted(p.name for p in ANSIBLE_DIR.glob("*.yml"))
ENV = {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"), "NO_COLOR": "1", "ANSIBLE_NOCOLOR": "1"}


def run(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)


def test_every_issue_playbook_exists():
    assert {"deploy.yml", "verify.yml", "remove.yml", "rollback.yml", "status.yml", "reboot-check.yml"} <= set(PLAYBOOKS)


def test_ansible_lint_production_profile_is_clean():
    res = run([str(BIN / "ansible-lint"), "--profile", "production", "--nocolor", "ansible/"], timeout=600)
    assert res.returncode == 0, f"ansible-lint failed:\n{res.stdout[-6000:]}\n{res.stderr[-6000:]}"
    assert "Profile 'production' was required, and it passed" in res.stdout + res.stderr


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_syntax(playbook):
    res = run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,", f"ansible/{playbook}"], timeout=120)
    assert res.returncode == 0, f"{playbook}:\n{res.stdout}\n{res.stderr}"


def test_roles_have_argument_specs_for_every_default():
    import yaml

    for role in ("docker_engine", "tornado_phoenix"):
        defaults = yaml.safe_load((ANSIBLE_DIR / "roles" / role / "defaults/main.yml").read_text())
        specs = yaml.safe_load((ANSIBLE_DIR / "roles" / role / "meta/argument_specs.yml").read_text())
        documented = set(specs["argument_specs"]["main"]["options"])
        assert set(defaults) <= documented, f"{role}: undocumented defaults {set(defaults) - documented}"
        assert all(name.startswith(role + "_") for name in defaults), f"{role}: defaults must be role-prefixed"
