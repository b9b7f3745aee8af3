# Vigil: the routine tasks. `make demo` and `make test` are the two set-up commands.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
TEST_WORKERS ?= 2
PY := $(VENV)/bin/python
DEB_PACKAGES := gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base gstreamer1.0-x \
	gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-tools \
	mosquitto mosquitto-clients iproute2 postgresql ca-certificates chromium ffmpeg fonts-noto-cjk \
	sip-tester

.PHONY: check-min-versions all deps debs venv web protos lint fmt docs test test-unit test-fast demo bench clean check-protos chaos

all: test

# Debian packages (installed only when root and missing), then a check of what the suite actually
# uses: GStreamer elements, gi modules under Debian's python3, binaries, CJK fonts.
debs: ## Debian packages the suite needs
	@scripts/install_debs.sh $(DEB_PACKAGES)
	@$(PYTHON) scripts/system_requirements.py

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[controller,dev]'
	@touch $@

venv: $(VENV)/.installed

deps: debs venv web

web: ## the console's pinned assets: hls.js, mpegts.js (npm, SHA-256 checked, into controller/web/vendor/, gitignored)
	@scripts/fetch_web_assets.sh

protos: venv ## regenerate Python code and stubs from protos/
	$(PY) scripts/gen_protos.py

check-protos: venv
	$(PY) scripts/gen_protos.py --check

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check edge_agent controller provisioning vigil_common vigil_camsim bench tests scripts
	$(VENV)/bin/mypy edge_agent controller provisioning vigil_common vigil_camsim protos bench scripts

fmt: venv ## format and apply ruff's safe fixes (what pre-commit and `make lint` check)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format edge_agent controller provisioning vigil_common vigil_camsim bench tests scripts

docs: venv ## regenerate docs/configuration.md from the configuration models
	$(PY) scripts/gen_config_docs.py

test-unit: venv ## pure-logic unit tests: no server, no Debian packages (tests/unit/conftest.py)
	$(VENV)/bin/pytest -q tests/unit

test: deps ## install everything, then run the whole suite: the rest on TEST_WORKERS workers, then the rig tests one at a time (scripts/run_suite.py)
	$(PY) scripts/run_suite.py --workers $(TEST_WORKERS)

test-fast: venv
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) -m "not rig"

demo: deps ## the platform on embedded defaults with emulated cameras
	$(VENV)/bin/python scripts/demo.py

chaos: deps ## long seeded fault run (>= 100 faults, ~15 min): kill -9 agent/controller/store, camera stops (docs/chaos.md)
	VIGIL_FAULT_RUN_FAULTS=$${VIGIL_FAULT_RUN_FAULTS:-100} $(VENV)/bin/pytest -q -s -m rig tests/rig/test_fault_run.py

bench: venv
	for b in agent_capture ingest fleet_health scheduler scheduler_fleet grants agents live console; do $(PY) -m bench.$$b --quick || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

check-min-versions: ## the lowest allowed dependency versions install, import and pass the unit tests
	scripts/check_min_versions.sh
