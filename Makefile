# labkit — two commands: `make lab` (set up, open JupyterLab) and `make test` (set up, run every test).
# Both are idempotent: the virtual environment is reused and only refreshed when a requirement changes.

PYTHON   ?= python3
VENV     ?= .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.labkit-installed
LAB_ARGS ?=
PYTEST_ARGS ?=
KERNEL_SOURCES := $(wildcard labkit/kernels/src/*.cpp labkit/kernels/src/*.h)

# A local CPU wheel of torch, where the machine has one, so pip never resolves the CUDA build.
WHEELS := $(wildcard /opt/wheels)
PIP := $(PY) -m pip install --disable-pip-version-check $(if $(WHEELS),--find-links $(WHEELS))
# Without local wheels (a laptop), PyTorch's CPU index: its 2.13.0+cpu sorts above PyPI's 2.13.0,
# whose Linux wheel pulls in gigabytes of CUDA libraries the lab never uses.
TORCH_INDEX := $(if $(WHEELS),,--extra-index-url https://download.pytorch.org/whl/cpu)

.PHONY: lab test setup chromium data student strip sanitize bench clean

# Jupyter refuses to run as root unless told to (containers, CI machines).
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(ROOT_ARGS) $(LAB_ARGS)

test: setup chromium
	$(PY) -m pytest tests $(PYTEST_ARGS)

setup: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt requirements-test.txt pyproject.toml setup.py $(KERNEL_SOURCES) | $(PY)
	$(PIP) --upgrade pip
	$(PIP) $(TORCH_INDEX) torch==2.13.0
	$(PIP) -r requirements.txt -r requirements-test.txt
	$(PIP) --no-build-isolation --no-deps -e .
	touch $(STAMP)

# Debian's Chromium for the real-browser tests (never a browser downloaded by a test tool).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; \
	fi

# Fetch MNIST / Fashion-MNIST into the cache (explicit: labkit never downloads by surprise).
data: setup
	$(PY) -m labkit.data download mnist fashion-mnist

# The student edition: every cell tagged "solution" is replaced by a stub.
student: setup
	$(PY) scripts/student_edition.py notebooks student/notebooks

# Remove outputs from committed notebooks.
strip: setup
	$(PY) scripts/strip_outputs.py notebooks/*.ipynb

# The int8 kernels built with AddressSanitizer + UBSan, then their tests.
sanitize: setup
	bash scripts/sanitize.sh $(PY)

bench: setup
	$(PY) benchmarks/baselines.py

clean:
	rm -rf $(VENV) build *.egg-info labkit/kernels/*.so
