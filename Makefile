# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
IAC_VENV := .venv-iac
PY := $(VENV)/bin/python

.PHONY: setup iac-setup browser-setup demo test lint bench clean

setup: $(VENV)/.installed node_modules/.installed

# checkov cannot share .venv (it pins packaging<24, pytest needs >=24): its own venv.
iac-setup: $(IAC_VENV)/.installed

$(IAC_VENV)/.installed: infra/requirements-iac.txt
	$(PYTHON) -m venv $(IAC_VENV)
	$(IAC_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-iac.txt
	touch $@

# The daily HTML report's test renders it in headless Chromium, Debian's package; installed
# once (as root, or with sudo), skipped when it is already there.
browser-setup:
	@command -v chromium >/dev/null 2>&1 || { \
	  command -v apt-get >/dev/null 2>&1 || { echo "install Chromium (Debian: apt-get install chromium)" >&2; exit 1; }; \
	  if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends chromium; }

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: setup  ## one day of a synthetic organization through the three functions
	$(PY) -m devhost demo $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy shared devhost simulators function_app.py

test: lint iac-setup browser-setup  ## lint, type-check, then every test (Azurite is started by the fixtures)
	$(PY) -m pytest $(ARGS)

bench: setup  ## throughput and memory of every stage; see docs/BENCHMARKS.md
	$(PY) -m bench $(ARGS)

clean:
	rm -rf $(VENV) $(IAC_VENV) node_modules .work .pytest_cache .mypy_cache .ruff_cache
