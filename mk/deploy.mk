# Deploy targets: Ansible (ansible/) to a VPS over SSH, or to the local sandbox VM when HOST is not given.
#   make deploy HOST=203.0.113.10 [SSH_USER=root] [APP_PORT=4005] [BUILD_ON_HOST=1] [BASE_IMAGE=...]
#   make deploy                        # the sandbox VM (make sandbox-up first)
#   make deploy INVENTORY=path [LIMIT=host]   # your own inventory
SSH_USER      ?= root
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
  TARGET_DESC := $(HOST) as $(SSH_USER)
else ifneq ($(strip $(INVENTORY)),)
  LIMIT     ?= all
  TARGET_DESC := the hosts of $(INVENTORY)
else
  INVENTORY := $(SANDBOX_STATE)/inventory.ini
  LIMIT     ?= sandbox
  TARGET_DESC := the sandbox VM ($(SANDBOX_STATE))
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

# Print every result line the play saved, or fail naming what to look at.
define show_results
	@shopt -s nullglob; files=($(RESULTS)/*.$(1)); \
	if [ $${#files[@]} -eq 0 ]; then echo "result: $(1) FAILED for $(TARGET_DESC) (see the Ansible output above)"; exit 1; fi; \
	cat "$${files[@]}"
endef

.PHONY: deploy verify reboot-check status logs rollback remove rebuild e2e deploy-inventory deploy-preflight

deploy-inventory:
	@mkdir -p $(RESULTS)
ifneq ($(strip $(HOST)),)
	@mkdir -p build/inventory
	@printf '# Written by make (mk/deploy.mk) for HOST=%s SSH_USER=%s\n[tornado_phoenix]\n%s ansible_user=%s%s\n' \
	  '$(HOST)' '$(SSH_USER)' '$(HOST)' '$(SSH_USER)' '$(if $(filter-out root,$(SSH_USER)), ansible_become=true)' > $(INVENTORY)
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
	$(PLAYBOOK) ansible/deploy.yml
	$(call show_results,deploy)
	@cat $(RESULTS)/*.verify 2>/dev/null || true

verify: deploy-inventory $(VENV)/.installed ## run the testinfra checks (host checks over SSH, WebSocket from here) against HOST=
	@echo "==> verifying tornado-phoenix on $(TARGET_DESC) (testinfra: tests/infra/verify)"
	@rm -f $(RESULTS)/*.verify
	$(PLAYBOOK) ansible/verify.yml
	$(call show_results,verify)

reboot-check: deploy-inventory $(VENV)/.installed ## reboot HOST=, prove the boot id changed, wait for the app, rerun verify
	@echo "==> rebooting $(TARGET_DESC) and checking that tornado-phoenix comes back"
	@rm -f $(RESULTS)/*.reboot $(RESULTS)/*.verify
	$(PLAYBOOK) ansible/reboot-check.yml
	$(call show_results,reboot)
	$(call show_results,verify)

status: deploy-inventory $(VENV)/.installed ## show the deployed version, port, unit and container state on HOST=
	@echo "==> status of tornado-phoenix on $(TARGET_DESC)"
	@rm -f $(RESULTS)/*.status
	@$(PLAYBOOK) ansible/status.yml >/dev/null || $(PLAYBOOK) ansible/status.yml
	$(call show_results,status)

logs: deploy-inventory $(VENV)/.installed ## show the last LINES= (100) log lines of the service on HOST=
	@echo "==> last $(LINES) log lines of tornado-phoenix on $(TARGET_DESC) (journalctl -u tornado-phoenix)"
	@$(ANSIBLE_ENV) $(BIN)/ansible '$(LIMIT)' -i $(INVENTORY) -m ansible.builtin.command \
	  -a 'journalctl --unit tornado-phoenix --lines $(LINES) --no-pager --output short-iso' \
	  && echo "result: shown the last $(LINES) log lines from $(TARGET_DESC)" \
	  || { echo "result: logs FAILED for $(TARGET_DESC)"; exit 1; }

rollback: deploy-inventory $(VENV)/.installed ## run the previous release again on HOST= (same port; run twice to roll forward)
	@echo "==> rolling tornado-phoenix back to the previous release on $(TARGET_DESC)"
	@rm -f $(RESULTS)/*.rollback
	$(PLAYBOOK) ansible/rollback.yml
	$(call show_results,rollback)

remove: deploy-inventory $(VENV)/.installed ## remove the app from HOST= (unit, container, images, env file, fact); Docker stays
	@echo "==> removing tornado-phoenix from $(TARGET_DESC)"
	@rm -f $(RESULTS)/*.remove
	$(PLAYBOOK) ansible/remove.yml
	$(call show_results,remove)

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
