"""Fixtures for the infrastructure tests (sandbox VPS, docker engine, base image).

- ``docker_engine``: session; dockerd answers (started via scripts/system-deps.sh if not).
- ``base_image``: session; ``tornado-phoenix-base:bookworm`` exists (built from Debian
  packages, cached by content hash); returns the image name, for
  ``docker build --build-arg BASE_IMAGE=<name>``.
- ``sandbox_vm``: session; a fresh sandbox VM (``SandboxVM``) booted for the session and
  powered off at its end. ``SANDBOX_KEEP=1`` leaves it running for debugging.
  ``sandbox_vm.inventory_path`` is the Ansible inventory (host ``sandbox``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "sandbox"))

from harness import SandboxVM, ensure_base_image, ensure_docker_engine  # noqa: E402


@pytest.fixture(scope="session")
def docker_engine() -> str:
    ensure_docker_engine()
    return "docker"


@pytest.fixture(scope="session")
def base_image(docker_engine: str) -> str:
    return ensure_base_image()


@pytest.fixture(scope="session")
def sandbox_vm():
    vm = SandboxVM()
    try:
        vm.up(fresh=True)
        yield vm
    finally:
        if os.environ.get("SANDBOX_KEEP") == "1":
            print(f"\nSANDBOX_KEEP=1: leaving the sandbox running (state {vm.state_dir})")
        else:
            vm.down()
