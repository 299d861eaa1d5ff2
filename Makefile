# The two commands of the Quick start: `make up` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# PyTorch 2.13.0 (CPU) is the build the test suite runs against.
TORCH := torch==2.13.0

# The Kubeflow SDK the training tests drive, in its own environment: it pins kubernetes<36.
KUBEFLOW_VENV := .venv-kubeflow
KUBEFLOW_SDK := kubeflow==0.5.0
# The older Katib SDK the tuning tests drive (report_metrics, KatibClient), in its own
# environment too: it pins protobuf<5 (the platform's Dapr protos need protobuf>=6.33).
# kubernetes<36: its KatibClient passes model objects to CustomObjectsApi, which the
# kubernetes client 36 and later refuse (they validate that the body is a dict).
KATIB_VENV := .venv-katib
KATIB_SDK := kubeflow-katib==0.19.0 kubernetes<36

.PHONY: up test install dev lint typecheck unit clean browser kubeflow-sdk katib-sdk mpi prometheus lowest cluster-example registry-tools

$(BIN)/python:
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 11) else "wonderland needs Python 3.11 or newer; found %d.%d. Set PYTHON=python3.11 (or newer) and run make again." % v[:2])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[sklearn,tuning,mlflow]'
	@touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q '$(TORCH)'
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

dev: $(VENV)/.dev-installed

## make up: the platform with the talk's conference demo (examples/conference/), in the
## foreground; the iris model of its InferenceService is trained on the first run.
## UP_ARGS adds flags, e.g. make up UP_ARGS="-f my-app.yaml".
up: install
	@$(BIN)/python examples/inference/train.py >/dev/null
	$(BIN)/wonderland up -f examples/conference $(UP_ARGS)

## make browser: Debian's headless Chromium and Playwright's Python client (the browser test).
browser: dev
	@command -v chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; }
	@$(BIN)/python -c 'import playwright' 2>/dev/null || $(BIN)/pip install -q 'playwright>=1.40'
	@$(BIN)/python -c 'import axe_playwright_python' 2>/dev/null || $(BIN)/pip install -q 'axe-playwright-python>=0.1.8'

## make mpi: Debian's Open MPI (the MPI TrainJob test runs mpirun).
mpi:
	@command -v mpirun >/dev/null || { apt-get update -q && apt-get install -y -q openmpi-bin; }

## make prometheus: Debian's Prometheus (wonderland up --prometheus and its tests).
prometheus:
	@command -v prometheus >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends prometheus; }

## make registry-tools: Debian's docker-registry, skopeo, mmdebstrap and htpasswd (the
## registry tests push the demo's images and read them back), podman and runc (where the
## machine can run containers, a test runs the model server image), and the base image
## they build onto, made from Debian packages with mmdebstrap into build/debian-base
## (about 25 to 90 s, depending on the mirror; once).
DEBIAN_BASE := build/debian-base
registry-tools:
	@command -v docker-registry >/dev/null && command -v skopeo >/dev/null && command -v mmdebstrap >/dev/null && command -v htpasswd >/dev/null && command -v podman >/dev/null && command -v runc >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends docker-registry skopeo mmdebstrap apache2-utils podman runc; }
	@test -f $(DEBIAN_BASE)/index.json || $(PYTHON) tools/debian_base.py -o $(DEBIAN_BASE)

## make kubeflow-sdk: the official Kubeflow SDK in .venv-kubeflow (the training tests use it).
$(KUBEFLOW_VENV)/.installed:
	$(PYTHON) -m venv $(KUBEFLOW_VENV)
	$(KUBEFLOW_VENV)/bin/pip install -q --upgrade pip
	$(KUBEFLOW_VENV)/bin/pip install -q '$(KUBEFLOW_SDK)'
	@touch $@

kubeflow-sdk: $(KUBEFLOW_VENV)/.installed

## make katib-sdk: the Katib SDK in .venv-katib (the tuning tests use it).
$(KATIB_VENV)/.installed:
	$(PYTHON) -m venv $(KATIB_VENV)
	$(KATIB_VENV)/bin/pip install -q --upgrade pip
	$(KATIB_VENV)/bin/pip install -q $(foreach p,$(KATIB_SDK),'$(p)')
	@touch $@

katib-sdk: $(KATIB_VENV)/.installed

# Regenerate examples/conference/cluster/ with `wonderland export` (docs/cluster.md).
cluster-example: install
	$(BIN)/python tools/export_conference.py

lint: dev
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools

typecheck: dev
	$(BIN)/mypy

## TEST_WORKERS: how many pytest-xdist workers run the suite. Most tests wait on processes
## and sockets (the whole suite keeps about one core busy), so three workers fit two cores;
## TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 3

unit: dev kubeflow-sdk katib-sdk
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

## make test: lint, strict type check and the whole suite.
test: lint typecheck unit

## make lowest: every dependency (base and the component extras) at the floor pyproject.toml
## gives, in a throwaway venv, then a smoke test: imports, a sidecar, a model server.
## Not part of make test: it downloads the old releases (a few minutes).
lowest: | $(BIN)/python
	$(BIN)/python tools/lowest_versions.py

clean:
	rm -rf $(VENV) $(KUBEFLOW_VENV) $(KATIB_VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
