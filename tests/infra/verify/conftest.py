"""testinfra checks of a deployed host. They only run when pytest is given a target host
(`--hosts=ansible://NAME --ansible-inventory=PATH`), which ansible/verify.yml (make verify) does; a plain
`pytest tests` skips them instead of testing the local machine by mistake."""

from __future__ import annotations

import json
import os

import pytest


def pytest_collection_modifyitems(config, items):
    if config.getoption("hosts", None):
        return
    skip = pytest.mark.skip(reason="deploy verification: run `make verify HOST=...` (needs --hosts)")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(skip)


@pytest.fixture(scope="module")
def app(host):
    """The deploy's local fact (/etc/ansible/facts.d/tornado_phoenix.fact) on the host."""
    fact = host.file("/etc/ansible/facts.d/tornado_phoenix.fact")
    assert fact.exists, "no /etc/ansible/facts.d/tornado_phoenix.fact on the host: deploy first (make deploy)"
    return json.loads(fact.content_string)


@pytest.fixture(scope="module")
def public_host(host):
    """The address clients use: TP_VERIFY_PUBLIC_HOST (set by verify.yml), else the inventory's
    tornado_phoenix_public_host, app_public_host, ansible_host or name (never a delegated localhost)."""
    if os.environ.get("TP_VERIFY_PUBLIC_HOST"):
        return os.environ["TP_VERIFY_PUBLIC_HOST"]
    variables = host.ansible.get_variables()
    return (
        variables.get("tornado_phoenix_public_host")
        or variables.get("app_public_host")
        or variables.get("ansible_host")
        or variables["inventory_hostname"]
    )
