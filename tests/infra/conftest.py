"""Fixtures for the infrastructure tests (sandbox VPS, docker engine, base image).

- ``docker_engine``: session; dockerd answers (started via scripts/system-deps.sh if not).
- ``base_image``: session; ``tornado-phoenix-base:bookworm`` exists (built from Debian
  packages, cached by content hash); returns the image name, for
  ``docker build --build-arg BASE_IMAGE=<name>``.
- ``sandbox_vm``: session; a fresh sandbox VM (``SandboxVM``) booted for the session and
  powered off at its end. ``SANDBOX_KEEP=1`` leaves it running for debugging.
  ``sandbox_vm.inventory_path`` is the Ansible inventory (host ``sandbox``).
  The VM is shared by every test of the session: the smoke tests of test_sandbox.py
  are moved to the front so they see it as fresh, before a deploy changes it.
- ``sandbox_vm_with_docker``: session; a second VM, variant ``docker`` (Debian's
  docker.io preinstalled: skips ~7 min of apt under TCG), for tests that do not exercise
  the docker role. State .sandbox/docker, ssh 127.0.0.1:2223, app ports 4010-4019
  (env SANDBOX_DOCKER_SSH_PORT / SANDBOX_DOCKER_PORT_FIRST / SANDBOX_DOCKER_PORT_LAST).
  Runs alongside ``sandbox_vm`` if both are used: two TCG VMs on two cores are slow.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "sandbox"))

# These tests run `make deploy …` as a user types it, at the top level. Under `make test` pytest inherits the outer
# make's MAKELEVEL/MAKEFLAGS, which would turn the inner make's last line into "make[1]: *** …" and hand it the outer
# jobserver: drop them for every subprocess started from here.
for _name in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES"):
    os.environ.pop(_name, None)

from harness import REPO_ROOT, SandboxVM, ensure_base_image, ensure_docker_engine  # noqa: E402


@pytest.fixture(scope="session")
def docker_engine() -> str:
    ensure_docker_engine()
    return "docker"


@pytest.fixture(scope="session")
def base_image(docker_engine: str) -> str:
    return ensure_base_image()


def pytest_collection_modifyitems(session, config, items):
    # Within tests/infra, the sandbox smoke tests go first: they check the shared VM as a
    # fresh VPS (no docker, free app ports) before a deploy test changes it.
    here = Path(__file__).resolve().parent
    slots = [i for i, item in enumerate(items) if here in Path(item.path).resolve().parents]
    infra = [items[i] for i in slots]
    infra.sort(key=lambda item: 0 if item.path.name == "test_sandbox.py" else 1)
    for i, item in zip(slots, infra, strict=True):
        items[i] = item


def _session_vm(vm: SandboxVM):
    try:
        vm.up(fresh=True)
        yield vm
    finally:
        if os.environ.get("SANDBOX_KEEP") == "1":
            print(f"\nSANDBOX_KEEP=1: leaving the sandbox running (state {vm.state_dir})")
        else:
            vm.down()


@pytest.fixture(scope="session")
def sandbox_vm():
    yield from _session_vm(SandboxVM())


@pytest.fixture(scope="session")
def sandbox_vm_with_docker():
    default_state = Path(os.environ.get("SANDBOX_STATE", REPO_ROOT / ".sandbox")) / "docker"
    yield from _session_vm(
        SandboxVM(
            state_dir=os.environ.get("SANDBOX_DOCKER_STATE", default_state),
            ssh_port=int(os.environ.get("SANDBOX_DOCKER_SSH_PORT", "2223")),
            port_first=int(os.environ.get("SANDBOX_DOCKER_PORT_FIRST", "4010")),
            port_last=int(os.environ.get("SANDBOX_DOCKER_PORT_LAST", "4019")),
            variant="docker",
        )
    )
