# labkit — two commands: `make lab` (set up, open JupyterLab) and `make test` (set up, run every test).
# Both are idempotent: the virtual environment is reused and only refreshed when a requirement changes.

PYTHON   ?= python3
VENV     ?= .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.labkit-installed
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json
LAB_ARGS ?=
PYTEST_ARGS ?=
KERNEL_SOURCES := $(wildcard labkit/kernels/src/*.cpp labkit/kernels/src/*.h)

# torch and torchvision are pinned (requirements.txt). Where the machine keeps those exact wheels on
# disk (the lab's CI machines: a CUDA build that runs on the CPU), pip takes them from there. Anywhere
# else (a laptop, Binder) pip gets them from PyTorch's CPU index: its +cpu builds sort above PyPI's,
# whose Linux wheels pull in gigabytes of CUDA libraries the lab never uses.
LOCAL_TORCH := $(wildcard /opt/pypi-more/files/torch-2.14.1-*.whl /opt/wheels/torch-2.14.1*.whl)
PIP := $(PY) -m pip install --disable-pip-version-check
TORCH_INDEX := $(if $(LOCAL_TORCH),,--extra-index-url https://download.pytorch.org/whl/cpu)

.PHONY: lab test setup git-filter chromium data student student-lab strip sanitize bench clean

# Jupyter refuses to run as root unless told to (containers, CI machines).
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(ROOT_ARGS) $(LAB_ARGS)

test: setup chromium
	$(PY) -m pytest tests $(PYTEST_ARGS)

setup: $(STAMP) $(LAB_OVERRIDES) git-filter

# The lab's own JupyterLab settings (binder/overrides.json: no "notified about Jupyter news?" pop-up),
# where this environment's JupyterLab reads them; Binder's postBuild installs the same file.
$(LAB_OVERRIDES): binder/overrides.json | $(PY)
	mkdir -p $(@D) && cp $< $@

# JupyterLab's autosave writes outputs into the notebooks: a git "clean" filter strips them from what
# git sees and commits (.gitattributes applies it to notebooks/*.ipynb; the files on disk keep them).
git-filter:
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  git config filter.labkit-strip.clean "$(PY) scripts/strip_outputs.py --clean" && \
	  git config filter.labkit-strip.smudge cat; \
	fi

$(PY):
	$(PYTHON) -m venv $(VENV)

# (PYTHONWARNINGS: setuptools' "Editable installation ... folders with the same name" note is
# information only, and labkit has no such folder.)
$(STAMP): requirements.txt requirements-test.txt pyproject.toml setup.py $(KERNEL_SOURCES) | $(PY)
	$(PIP) --upgrade pip
	$(PIP) $(TORCH_INDEX) torch==2.14.1 torchvision==0.29.1
	$(PIP) -r requirements.txt -r requirements-test.txt
	PYTHONWARNINGS="ignore:Editable installation" $(PIP) --no-build-isolation --no-deps -e .
	touch $(STAMP)

# Debian's Chromium for the real-browser tests (never a browser downloaded by a test tool).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; \
	fi

# Fetch Fashion-MNIST into the cache (explicit: labkit never downloads by surprise; MNIST ships inside labkit).
data: setup
	$(PY) -m labkit.data download fashion-mnist

# The student edition: every cell tagged "solution" is replaced by a stub (`name = ...`).
student: setup
	$(PY) scripts/student_edition.py notebooks student/notebooks

# The student edition, opened in JupyterLab (what an instructor checks before a course).
student-lab: student
	$(VENV)/bin/jupyter lab --notebook-dir=student/notebooks $(ROOT_ARGS) $(LAB_ARGS)

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
