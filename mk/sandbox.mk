# Sandbox VPS (qemu/TCG Debian VM) and docker base image: the fixtures the deploy
# bundle is proven against. Scripts live in tests/infra/sandbox/; env knobs
# (SANDBOX_STATE, SANDBOX_SSH_PORT, SANDBOX_PORT_FIRST/LAST, SANDBOX_VARIANT, ...)
# are documented at the top of tests/infra/sandbox/sandbox.sh.

SANDBOX_SH := tests/infra/sandbox/sandbox.sh
# CMD is read from the environment (make puts command-line variables there), so
# quotes and ';' in CMD='...' reach the guest's shell untouched.

.PHONY: sandbox-build sandbox-up sandbox-down sandbox-ssh sandbox-status sandbox-reset sandbox-test base-image

sandbox-build: system-deps ## build (or reuse) the cached sandbox VM disk (debootstrap bookworm, no docker)
	@bash $(SANDBOX_SH) build

sandbox-up: system-deps ## boot a fresh sandbox VM; ssh on 127.0.0.2:2222, app ports 4000-4009 (4000 squatted); writes .sandbox/inventory.ini
	@bash $(SANDBOX_SH) up

sandbox-down: ## power off the sandbox VM and stop qemu
	@bash $(SANDBOX_SH) down

sandbox-ssh: ## run CMD='...' in the sandbox VM as root (no CMD: a shell)
	@bash $(SANDBOX_SH) ssh $${CMD:+"$$CMD"}; rc=$$?; echo "result: sandbox ssh exited $$rc"; exit $$rc

sandbox-status: ## is the sandbox VM running, its ports and boot id
	@bash $(SANDBOX_SH) status

sandbox-reset: system-deps ## discard the sandbox VM's disk overlay and boot it fresh
	@bash $(SANDBOX_SH) reset

sandbox-test: system-deps $(VENV)/.installed ## smoke-test the sandbox VM (boots one; a few minutes)
	$(BIN)/pytest $(PYTEST_ARGS) tests/infra/test_sandbox.py
	@echo "result: sandbox smoke test passed"

base-image: system-deps ## build (or reuse) the docker image tornado-phoenix-base:bookworm from Debian packages
	@bash tests/infra/sandbox/base-image.sh
