# Deploy targets: Ansible (ansible/) to a VPS over SSH, or to the local sandbox VM when HOST is not given.
#   make deploy HOST=203.0.113.10 [SSH_KEY=~/.ssh/id_ed25519] [SSH_PORT=22] [SSH_USER=root] [APP_PORT=4005]
#               [BUILD_ON_HOST=1] [BASE_IMAGE=...] [PURGE=1 (remove: also the data)]
#   make deploy                        # the sandbox VM (make sandbox-up first)
#   make deploy INVENTORY=path [LIMIT=host]   # your own inventory
SSH_USER      ?= root
# The private key and SSH port; written into the generated inventory, so Ansible and testinfra both use them.
# Empty SSH_KEY: ssh's defaults and a running ssh-agent.
SSH_KEY       ?=
SSH_PORT      ?= 22
# A known_hosts file of your own (empty: ~/.ssh/known_hosts); tests use it to simulate a rebuilt VPS.
SSH_KNOWN_HOSTS ?=
PURGE         ?=
APP_PORT      ?=
BUILD_ON_HOST ?=
BASE_IMAGE    ?=
ANSIBLE_ARGS  ?=
LINES         ?= 100
SANDBOX_STATE ?= .sandbox
SANDBOX_BASE_IMAGE ?= tornado-phoenix-base:bookworm

ANSIBLE_COLOR ?= $(if $(CI),0,1)
ANSIBLE_ENV := ANSIBLE_CONFIG=$(CURDIR)/ansible/ansible.cfg ANSIBLE_FORCE_COLOR=$(ANSIBLE_COLOR)
RESULTS     := build/results

ifneq ($(strip $(HOST)),)
  INVENTORY ?= build/inventory/$(HOST).ini
  LIMIT     ?= $(HOST)
  TARGET_DESC := $(HOST) as $(SSH_USER)$(if $(filter-out 22,$(SSH_PORT)), (ssh port $(SSH_PORT)))
  RESULT_HOST := $(HOST)
else ifneq ($(strip $(INVENTORY)),)
  LIMIT     ?= all
  TARGET_DESC := the hosts of $(INVENTORY)
  RESULT_HOST := the hosts of $(INVENTORY)
else
  INVENTORY := $(SANDBOX_STATE)/inventory.ini
  LIMIT     ?= sandbox
  TARGET_DESC := the sandbox VM ($(SANDBOX_STATE))
  RESULT_HOST := the sandbox VM
  SANDBOX_MODE := 1
  # No registry reaches the sandbox: build on the locally made Debian base image, and choose among the
  # ports the VM forwards.
  BASE_IMAGE := $(or $(BASE_IMAGE),$(SANDBOX_BASE_IMAGE))
  SANDBOX_PORTS = $(shell sed -n 's/^SANDBOX_PORT_\(FIRST\|LAST\)=//p' $(SANDBOX_STATE)/sandbox.env 2>/dev/null)
endif

EXTRA_VARS = $(if $(APP_PORT),-e tornado_phoenix_port=$(APP_PORT)) \
  $(if $(BUILD_ON_HOST),-e tornado_phoenix_build_on_host=true) \
  $(if $(BASE_IMAGE),-e tornado_phoenix_base_image=$(BASE_IMAGE)) \
  $(if $(and $(SANDBOX_MODE),$(SANDBOX_PORTS)),-e tornado_phoenix_port_range_start=$(word 1,$(SANDBOX_PORTS)) -e tornado_phoenix_port_range_end=$(word 2,$(SANDBOX_PORTS)))

PLAYBOOK = $(ANSIBLE_ENV) $(BIN)/ansible-playbook -i $(INVENTORY) --limit '$(LIMIT)' $(EXTRA_VARS) $(ANSIBLE_ARGS)

# Run a deploy command so that it ends with exactly one `result:` line, also on failure (unreachable host,
# changed host key, failed verification): scripts/deploy_result.py. $(1) = action, $(2) = command.
define run_with_result
	@$(PY) scripts/deploy_result.py --action $(1) --host '$(RESULT_HOST)' --port '$(SSH_PORT)' --user '$(SSH_USER)' \
	  --results $(RESULTS) --log $(RESULTS)/$(1).log $(3) -- env $(2)
endef

.PHONY: deploy verify reboot-check status logs rollback remove rebuild e2e deploy-inventory deploy-preflight

deploy-inventory:
	@mkdir -p $(RESULTS)
ifneq ($(strip $(HOST)),)
	@mkdir -p build/inventory
	@printf '# Written by make (mk/deploy.mk) for HOST=%s; Ansible and testinfra (make verify) both read it.\n[tornado_phoenix]\n%s ansible_host=%s ansible_port=%s ansible_user=%s tornado_phoenix_public_host=%s%s%s%s\n' \
	  '$(HOST)' '$(HOST)' '$(HOST)' '$(SSH_PORT)' '$(SSH_USER)' '$(HOST)' \
	  '$(if $(filter-out root,$(SSH_USER)), ansible_become=true)' \
	  '$(if $(SSH_KEY), ansible_ssh_private_key_file=$(abspath $(SSH_KEY)))' \
	  '$(if $(SSH_KNOWN_HOSTS), ansible_ssh_common_args="-o UserKnownHostsFile=$(abspath $(SSH_KNOWN_HOSTS))")' > $(INVENTORY)
	@if [ -n '$(SSH_KEY)' ] && [ ! -r '$(SSH_KEY)' ]; then \
	  echo "result: cannot read the SSH key SSH_KEY=$(SSH_KEY); give the path of your private key (or leave SSH_KEY out and use ssh-agent)"; exit 1; fi
endif
	@test -f $(INVENTORY) || { \
	  if [ -n "$(SANDBOX_MODE)" ]; then echo "error: no sandbox VM ($(INVENTORY) missing): run 'make sandbox-up' first, or pass HOST=<your VPS>"; \
	  else echo "error: inventory $(INVENTORY) not found"; fi; exit 1; }

deploy-preflight: deploy-inventory $(VENV)/.installed
	@if [ -z "$(BUILD_ON_HOST)" ] && ! docker info >/dev/null 2>&1; then \
	  echo "error: Docker is not running on this machine, and the image is built here by default."; \
	  echo "       Start Docker (make system-deps on Debian), or build on the host: make deploy BUILD_ON_HOST=1 ..."; exit 1; fi
	@if [ -n "$(SANDBOX_MODE)" ] && [ -z "$(BUILD_ON_HOST)" ] && ! docker image inspect $(BASE_IMAGE) >/dev/null 2>&1; then \
	  echo "==> building the base image $(BASE_IMAGE) (no registry here)"; bash tests/infra/sandbox/base-image.sh; fi

deploy: deploy-preflight ## deploy to HOST= (or the sandbox VM): docker, image, port, systemd unit, health gate, then verify
	@echo "==> deploying tornado-phoenix to $(TARGET_DESC): $(if $(BUILD_ON_HOST),build on the host,build here and ship the image)$(if $(BASE_IMAGE), on $(BASE_IMAGE)), then verify"
	@rm -f $(RESULTS)/*.deploy $(RESULTS)/*.verify
	$(call run_with_result,deploy,$(PLAYBOOK) ansible/deploy.yml)

verify: deploy-inventory $(VENV)/.installed ## run the testinfra checks (host checks over SSH, WebSocket from here) against HOST=
	@echo "==> verifying tornado-phoenix on $(TARGET_DESC) (testinfra: tests/infra/verify)"
	@rm -f $(RESULTS)/*.verify
	$(call run_with_result,verify,$(PLAYBOOK) ansible/verify.yml)

reboot-check: deploy-inventory $(VENV)/.installed ## reboot HOST=, prove the boot id changed, wait for the app, rerun verify
	@echo "==> rebooting $(TARGET_DESC) and checking that tornado-phoenix comes back"
	@rm -f $(RESULTS)/*.reboot $(RESULTS)/*.verify
	$(call run_with_result,reboot-check,$(PLAYBOOK) ansible/reboot-check.yml)

status: deploy-inventory $(VENV)/.installed ## show the deployed version, port, unit and container state on HOST=
	@echo "==> status of tornado-phoenix on $(TARGET_DESC)"
	@rm -f $(RESULTS)/*.status
	$(call run_with_result,status,$(PLAYBOOK) ansible/status.yml)

logs: deploy-inventory $(VENV)/.installed ## show the last LINES= (100) log lines of the service on HOST=
	@echo "==> last $(LINES) log lines of tornado-phoenix on $(TARGET_DESC) (journalctl -u tornado-phoenix)"
	$(call run_with_result,logs,$(ANSIBLE_ENV) $(BIN)/ansible '$(LIMIT)' -i $(INVENTORY) -m ansible.builtin.command \
	  -a 'journalctl --unit tornado-phoenix --lines $(LINES) --no-pager --output short-iso',\
	  --success 'shown the last $(LINES) log lines from $(TARGET_DESC)')

rollback: deploy-inventory $(VENV)/.installed ## run the previous release again on HOST= (same port; run twice to roll forward)
	@echo "==> rolling tornado-phoenix back to the previous release on $(TARGET_DESC)"
	@rm -f $(RESULTS)/*.rollback
	$(call run_with_result,rollback,$(PLAYBOOK) ansible/rollback.yml)

remove: deploy-inventory $(VENV)/.installed ## remove the app from HOST= (unit, container, images, env file, fact); Docker and the data stay (PURGE=1: data too)
	@echo "==> removing tornado-phoenix from $(TARGET_DESC)"
	@rm -f $(RESULTS)/*.remove
	$(call run_with_result,remove,$(PLAYBOOK) $(if $(PURGE),-e tornado_phoenix_purge_data=true) ansible/remove.yml)

REBUILD_BASE = $(or $(BASE_IMAGE),$(shell docker image inspect python:3.11-slim-bookworm >/dev/null 2>&1 && echo python:3.11-slim-bookworm || echo $(SANDBOX_BASE_IMAGE)))
REBUILD_ARGS = --build-arg BASE_IMAGE=$(REBUILD_BASE) \
  --build-arg VERSION=$$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml) \
  --build-arg REVISION=$$(git rev-parse --short=7 HEAD) \
  --build-arg SOURCE_DATE_EPOCH=$$(git log -1 --pretty=%ct) \
  --build-arg CREATED=$$(date -u -d @$$(git log -1 --pretty=%ct) +%Y-%m-%dT%H:%M:%SZ)

rebuild: ## build the image twice from scratch (no cache) and compare: same layers = reproducible
	@echo "==> building the image twice without cache on $(REBUILD_BASE) (SOURCE_DATE_EPOCH = last commit time)"
	@docker image inspect $(REBUILD_BASE) >/dev/null 2>&1 || { \
	  echo "error: base image $(REBUILD_BASE) is not on this machine: docker pull it, or make base-image"; exit 1; }
	@mkdir -p build
	@set -e; for i in 1 2; do \
	  docker build --quiet --no-cache $(REBUILD_ARGS) -t tornado-phoenix:rebuild-$$i . >/dev/null; \
	  docker image inspect -f '{{json .RootFS.Layers}}' tornado-phoenix:rebuild-$$i > build/.rebuild-$$i; \
	  echo "   build $$i: image ID $$(docker image inspect -f '{{.Id}}' tornado-phoenix:rebuild-$$i)," \
	       "layers sha256:$$(sha256sum < build/.rebuild-$$i | cut -c1-64)"; \
	done
	@# The classic builder stamps the build time into the image config, so the image IDs differ; the layers
	@# (every file, mode and mtime) are what must match.
	@if cmp -s build/.rebuild-1 build/.rebuild-2; then \
	  echo "result: reproducible: both builds have identical layers (layers digest sha256:$$(sha256sum < build/.rebuild-1 | cut -c1-64))"; \
	else echo "result: NOT reproducible: the layers differ (compare build/.rebuild-1 and build/.rebuild-2)"; exit 1; fi
	@docker image rm tornado-phoenix:rebuild-1 tornado-phoenix:rebuild-2 >/dev/null

e2e: install ## only the end-to-end deploy test against a fresh sandbox VM (tens of minutes)
	$(BIN)/pytest -m e2e $(PYTEST_ARGS) tests/infra/test_e2e_deploy.py
	@echo "result: end-to-end deploy test passed"
