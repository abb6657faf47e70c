# Two commands matter: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench schema clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/clawgate gateway run

lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard bench) $(wildcard examples)
	$(BIN)/ruff format --check src tests $(wildcard bench) $(wildcard examples)

typecheck: $(STAMP)
	$(BIN)/mypy

# pytest exits 5 when it collected nothing: on main that is a failure, never a pass.
test: $(STAMP) lint typecheck
	@$(BIN)/python -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

bench: $(STAMP)
	$(BIN)/python -m bench.run

schema: $(STAMP)
	$(BIN)/clawgate gateway schema > schema/protocol.schema.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
