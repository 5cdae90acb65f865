# hecate: `make lab` (the embedded environment) and `make test` work on a fresh machine
# with Python 3.11+, make and (for the root-only extras) apt.
PYTHON ?= python3
VENV ?= .venv
SALT_VERSION ?= 3008.3
LTS_SALT_VERSION ?= 3007.15
PYTEST_ARGS ?=
STAMP := $(VENV)/.hecate-salt-$(SALT_VERSION)
# Debian packages the root-only tests use (real WireGuard tunnel, real nginx with its
# stream module, real coturn).
SYSTEM_PACKAGES := wireguard-tools wireguard-go nginx libnginx-mod-stream coturn iproute2 iputils-ping

.PHONY: venv system-deps docs lint test test-quick test-long test-lts lab lab-down lab-status bench wheel clean

# The venv is rebuilt whenever setup.cfg (the one place dependencies are declared) changes.
$(STAMP): setup.cfg pyproject.toml lab/requirements.py
	$(PYTHON) lab/requirements.py tests docs > /dev/null
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(PYTHON) lab/requirements.py tests docs > $(VENV)/requirements.txt
	$(VENV)/bin/python -m pip install -q "salt==$(SALT_VERSION)" -r $(VENV)/requirements.txt
	touch $@

venv: $(STAMP)

# Root only, and only what is missing; --no-install-recommends keeps it small.
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  missing=""; \
	  command -v wg >/dev/null 2>&1 || missing="$$missing wireguard-tools"; \
	  command -v wireguard-go >/dev/null 2>&1 || missing="$$missing wireguard-go"; \
	  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	  [ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || missing="$$missing libnginx-mod-stream"; \
	  command -v turnserver >/dev/null 2>&1 || missing="$$missing coturn"; \
	  command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	  command -v ping >/dev/null 2>&1 || missing="$$missing iputils-ping"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; } || \
	    echo "could not install$$missing: the tests that need them will skip"; \
	  fi; \
	fi

# The docs (Sphinx + MyST, autodoc over the modules); any warning fails the build.
docs: venv
	$(VENV)/bin/python -m sphinx -W --keep-going -q -b html docs docs/_build/html

# ruff, configured in pyproject.toml (.pre-commit-config.yaml runs the same check on commit).
lint: venv
	$(VENV)/bin/python -m ruff check .

# The lint and the docs first (a broken reference fails here), then two fixed shards side by
# side (tests/shards.py): one per core of a CI machine.
test: venv system-deps lint docs
	$(VENV)/bin/python tests/shards.py -m "not long" $(PYTEST_ARGS)

# The lint and the unit tests (state logic with the loader dunders and fakes, schemas, clients
# against the simulators): under a minute, for the edit-test loop.
test-quick: venv lint
	$(VENV)/bin/python -m pytest -q tests/unit $(PYTEST_ARGS)

test-long: venv system-deps
	$(VENV)/bin/python tests/shards.py -m long $(PYTEST_ARGS)

# The same suite on the Salt 3007 LTS, in its own venv.
test-lts:
	$(MAKE) test VENV=.venv-lts SALT_VERSION=$(LTS_SALT_VERSION)

lab: venv
	$(VENV)/bin/python -m lab up

lab-down: venv
	$(VENV)/bin/python -m lab down

lab-status: venv
	$(VENV)/bin/python -m lab status

bench: venv
	$(VENV)/bin/python -m bench

wheel: venv
	$(VENV)/bin/python -m build --wheel --outdir dist .

clean:
	rm -rf $(VENV) .venv-lts build dist *.egg-info .lab .pytest_cache docs/_build
