# Every target does its own set-up: a fresh clone needs only python3 and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pyenv keeps 3.9 off PATH (its shim refuses), so look in its versions too.
PY39 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.9*/bin/python3.9) \
          $(shell command -v python3.9 >/dev/null 2>&1 && python3.9 -V >/dev/null 2>&1 && echo python3.9))
VENV39 ?= .venv39

.PHONY: postgres promtool mosquitto help collection collection-docs venv browser faketime lint typecheck unit test test-py39 ansible lab lab-down demo bench fleet-sim collectd-compare fuzz deploy-timing release clean

help:
	@echo "make lab [AGENTS=n] [ARCH=arm]  the lab fleet: a receiver and n agents (default 3) in systemd containers; ARCH=arm makes two of them Raspberry Pis (aarch64, armv7l) by emulation"
	@echo "make lab-down tear the lab down"
	@echo "make test     what CI runs: lint, type-check, the Python tests (3.11; the agent on 3.9), then make ansible"
	@echo "make ansible  ansible-lint, ansible-test sanity, unit tests and every Molecule scenario"
	@echo "make demo     a receiver and an agent as plain processes on this machine (no Docker)"
	@echo "make bench    print the agent's and the receiver's benchmark figures"
	@echo "make fleet-sim  thousands of simulated agents against one receiver (docs/evidence.md)"
	@echo "make collectd-compare  beam-agent and collectd side by side: CPU, RSS, a receiver outage"
	@echo "make fuzz [REQUESTS=n] [SEED=s]  schemathesis against a real receiver, 10,000 requests by default"
	@echo "make deploy-timing  site.yml over SSH: the project's ansible.cfg against Ansible's defaults"
	@echo "make release [VERSION=x.y.z]  build a release into dist/releases for beam.fleet.rollout"
	@echo "make collection  the release tarball dist/beam-fleet-<version>.tar.gz, the beam-fleet wheel inside"
	@echo "make collection-docs  the collection's plugin and role docs (antsibull-docs) in build/collection-docs"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[agent,receiver,test,dev]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check agent receiver tests bench scripts
	$(BIN)/ruff format --check agent receiver tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

# The dashboard's browser test drives Debian's Chromium.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq chromium fonts-liberation >/dev/null; \
	  else echo "install Chromium (Debian: apt-get install chromium) for the browser test" >&2; exit 1; fi; }

# The clock-step fault test runs the agent under Debian's libfaketime.
faketime:
	@command -v faketime >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq faketime >/dev/null; \
	  else echo "install libfaketime (Debian: apt-get install faketime) for the clock-step fault test" >&2; exit 1; fi; }

# The receiver's tests run on a real PostgreSQL 15 too, started from Debian's binaries.
postgres:
	@test -x /usr/lib/postgresql/15/bin/initdb || [ -n "$$BEAM_PG_BIN" ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq postgresql-15 >/dev/null; \
	  else echo "install PostgreSQL 15 (Debian: apt-get install postgresql-15) or set BEAM_PG_BIN for the receiver's tests" >&2; exit 1; fi; }

# The shipped alerting rules are checked and unit-tested with Prometheus's promtool, and
# docs/monitoring.md's Alertmanager route with amtool. Installing does not start them.
promtool:
	@{ command -v promtool && command -v amtool; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null; \
	  else echo "install promtool and amtool (Debian: apt-get install prometheus prometheus-alertmanager) for the alerting rules' tests" >&2; exit 1; fi; }

# The agent's mqtt driver is tested against a real Mosquitto broker (tests/support/mqtt.py).
mosquitto:
	@test -x /usr/sbin/mosquitto || [ -n "$$BEAM_MOSQUITTO" ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mosquitto >/dev/null; \
	  else echo "install Mosquitto (Debian: apt-get install mosquitto) or set BEAM_MOSQUITTO for the mqtt driver's tests" >&2; exit 1; fi; }

# Workers for the Python suites (pytest-xdist): most of their time is spent waiting on real
# processes and servers, so more workers than cores pay off; the slow tests start first
# (tests/conftest.py) and worksteal keeps every worker busy. PYTEST_WORKERS=0 runs them in one process.
PYTEST_WORKERS ?= 3
PYTEST_PARALLEL = $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist worksteal)

unit: $(STAMP) browser faketime postgres promtool mosquitto
	$(BIN)/pytest -q $(PYTEST_PARALLEL)

# The agent must run on Raspberry Pi OS bullseye's Python 3.9: run its tests there too.
$(VENV39)/.installed: pyproject.toml
	$(PY39) -m venv $(VENV39)
	$(VENV39)/bin/pip install --quiet --upgrade pip
	$(VENV39)/bin/pip install --quiet -e '.[agent,test]'
	touch $@

ifeq ($(strip $(PY39)),)
test-py39:
	@if [ -n "$$CI" ]; then echo "CI needs Python 3.9 for the agent tests: none found" >&2; exit 1; fi
	@echo "WARNING: no Python 3.9 found; the agent's Python 3.9 tests did not run" >&2
else
test-py39: $(VENV39)/.installed mosquitto
	$(VENV39)/bin/pytest -q -p no:cacheprovider $(PYTEST_PARALLEL) tests/agent
endif

# ansible-lint, ansible-test sanity, the collection's unit tests and every Molecule
# scenario in real systemd containers (installs Docker and builds the node image if needed).
# Part of `make test`, so CI runs it.
ansible:
	molecule/scripts/ci.sh

lab:
	BEAM_LAB_AGENTS=$(or $(AGENTS),3) BEAM_LAB_ARCH=$(or $(ARCH),x86_64) molecule/scripts/lab-up.sh

lab-down:
	molecule/scripts/lab-down.sh

test: lint typecheck unit test-py39 ansible

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

# A release for beam.fleet.rollout: built once, never rebuilt (see docs/rollouts.md).
release: $(STAMP)
	$(BIN)/python collections/ansible_collections/beam/fleet/roles/wheelhouse/files/build_release.py \
	  --source . --catalog dist/releases $(if $(VERSION),--version $(VERSION))

# The collection's release tarball for operators (docs/collection.md, "Quickstart"): the
# beam-fleet wheel of the same version inside, so it deploys without this repository.
collection:
	molecule/scripts/ansible-venv.sh >/dev/null
	.venv-ansible/bin/python scripts/build_collection.py

collection-docs:
	molecule/scripts/ansible-venv.sh >/dev/null
	rm -rf build/collection-docs && mkdir -p build/collection-docs
	PATH="$(CURDIR)/.venv-ansible/bin:$$PATH" ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/collections \
	  antsibull-docs collection --use-current --dest-dir build/collection-docs beam.fleet
	@echo "rendered: build/collection-docs/collections/beam/fleet/index.rst"

# Simulated agents (the agent's own queue and push code) against one real receiver. The
# default is docs/evidence.md's headline: 5,000 and 7,500 nodes at 1 reading/s, 30 s pushes.
FLEET_SIM_ARGS ?= --nodes 5000,7500 --push-interval-ms 30000 --enqueue-every-s 30 \
  --heartbeat-s 30 --seconds 120 --drain-s 180 --processes 4
fleet-sim: $(STAMP)
	$(BIN)/python bench/fleet_sim.py $(FLEET_SIM_ARGS)

# beam-agent beside Debian's collectd (installed with apt when missing, as root), one receiver.
collectd-compare: $(STAMP)
	$(BIN)/python bench/collectd_compare.py $(ARGS)

# The receiver's fuzz campaign at full size (`make unit` runs a smaller one); see docs/receiver.md.
fuzz: $(STAMP)
	BEAM_FUZZ_REQUESTS=$(or $(REQUESTS),10000) $(if $(SEED),BEAM_FUZZ_SEED=$(SEED)) \
	  $(BIN)/pytest -q -s -p no:cacheprovider tests/receiver/test_fuzz.py

# site.yml on the lab inventory over SSH, the project's ansible.cfg against Ansible's defaults
# (fresh nodes, then nothing to change). Hold the Molecule lock while it measures:
#   flock /tmp/beam-fleet-molecule.lock make deploy-timing
# DEPLOY_TIMING_ARGS='--rtt-ms 30' adds 30 ms round trips (a delaying proxy before each sshd);
# '--configs tuned,defaults,mitogen' times the opt-in Mitogen strategy too.
deploy-timing: $(STAMP)
	molecule/scripts/ansible-venv.sh >/dev/null
	molecule/scripts/docker-setup.sh
	$(BIN)/python bench/deploy_timing.py $(DEPLOY_TIMING_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/agent_bench.py
	$(BIN)/python bench/receiver_bench.py
	$(BIN)/python bench/receiver_cost.py

clean:
	rm -rf $(VENV) $(VENV39) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
