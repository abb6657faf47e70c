# Two commands matter: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: `make run` needs only the runtime dependencies; `make test` and the helpers add
# the `test` extra (pytest, mypy, ruff, playwright, ...) on top of the same venv.
RUNTIME_STAMP := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed
# Extra arguments for `make run`, e.g. make run ARGS="--port 18790".
ARGS ?=
CHROMIUM := /usr/bin/chromium
# The hub scale-out tests run a real PostgreSQL and nats-server (tests/servers.py).
NATS_SERVER := /usr/sbin/nats-server
PG_INITDB := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb) /usr/lib/postgresql/initdb)
# OpenClaw's own node host, for the interop test (tests/e2e/test_openclaw_node.py); cached.
OPENCLAW_TOOLS := .tools/openclaw
OPENCLAW_STAMP := $(OPENCLAW_TOOLS)/.installed-2026.9.6
NGIRCD := /usr/sbin/ngircd

.PHONY: run test lint typecheck bench schema docs screenshot clean openclaw

$(RUNTIME_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUNTIME_STAMP)

$(STAMP): $(RUNTIME_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,hub-cluster]'
	touch $(STAMP)

# The browser test drives Debian's Chromium: install it when missing (as root on CI, else sudo).
$(CHROMIUM):
	@if [ "$$(id -u)" -eq 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
	else echo "make: $(CHROMIUM) is missing; install the chromium package as root" >&2; exit 1; fi; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium

# PostgreSQL and nats-server for the hub scale-out tests, like chromium: Debian's packages.
$(NATS_SERVER) $(PG_INITDB):
	@if [ "$$(id -u)" -eq 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
	else echo "make: $@ is missing; install postgresql and nats-server as root" >&2; exit 1; fi; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		postgresql nats-server

# Installs nothing (and the test skips) when npm itself is missing.
$(OPENCLAW_STAMP):
	sh tests/tools/install_openclaw.sh $(OPENCLAW_TOOLS)

openclaw: $(OPENCLAW_STAMP)

# The IRC channel's tests run a real ngircd: install Debian's package when missing.
$(NGIRCD):
	@if [ "$$(id -u)" -eq 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
	else echo "make: $(NGIRCD) is missing; install the ngircd package as root" >&2; exit 1; fi; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ngircd

run: $(RUNTIME_STAMP)
	$(BIN)/clawgate gateway run $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard bench) $(wildcard examples)
	$(BIN)/ruff format --check src tests $(wildcard bench) $(wildcard examples)

typecheck: $(STAMP)
	$(BIN)/mypy

# One xdist worker per core; tests sharing a real server keep to one worker (tests/conftest.py).
# A worker that dies ends the run at once with its report: with --dist loadgroup a replacement
# worker was seen to get no work, so the run waited until CI's time limit instead.
# pytest exits 5 when it collected nothing: on main that is a failure, never a pass.
test: $(STAMP) $(CHROMIUM) $(NGIRCD) $(NATS_SERVER) $(PG_INITDB) $(OPENCLAW_STAMP) lint typecheck
	@$(BIN)/python -m pytest -n auto --dist loadgroup --max-worker-restart=0; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

bench: $(STAMP)
	$(BIN)/python -m bench.run

# The README's pictures of WebChat (1280x800 and a 390x844 phone), by a real gateway and Chromium.
screenshot: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m tests.browser.screenshot docs

schema: $(STAMP)
	$(BIN)/clawgate gateway schema > schema/protocol.schema.json

# The generated blocks of README.md, docs/protocol.md and docs/control-plane.md.
docs: $(STAMP)
	$(BIN)/python -m tests.tools.docs_gen

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .tools
