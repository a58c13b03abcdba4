# The README's commands. Each sets itself up: a virtualenv in .venv with the pinned
# requirements, rebuilt when requirements change. `make run` installs only what running
# needs (RUN_STAMP); the development toolchain comes with every other target (STAMP).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
# checkov pins its own boto3, so it lives in a virtualenv of its own.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
STAGE ?= prod
# pytest-xdist workers for `make test` (the machines this runs on have 2 cores).
TEST_WORKERS ?= 2

.PHONY: run test bench chaos fuzz lint typecheck package agent-config rehearse deploy remove clean

$(RUN_STAMP): requirements.txt requirements-run.txt cli/pyproject.toml kit/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip<26.3"  # chalice 1.34 requires pip<26.3
	$(BIN)/python -m pip install --quiet -r requirements-run.txt
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP) requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

$(CHECKOV_STAMP): requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $(CHECKOV_STAMP)

run: $(RUN_STAMP)
	$(BIN)/python -m local

# Tests sharing a stack stay on one worker (tests/conftest.py groups them); mypy runs
# beside pytest, and its report follows pytest's. The larger chaos seeds are make chaos's.
test: $(STAMP) $(CHECKOV_STAMP) lint
	@typed=$$(mktemp); $(BIN)/mypy >$$typed 2>&1 & mypy=$$!; \
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not chaos" --durations=10; \
	tests=$$?; wait $$mypy; types=$$?; echo "mypy:"; cat $$typed; rm -f $$typed; \
	test $$tests -eq 0 && test $$types -eq 0

# A seeded replay under faults with its invariants: make chaos SEED=7 (or SEED="1 2 3").
SEED ?= 1
INSTANCES ?= 1000
chaos: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m chaos tests/integration/test_chaos.py
	$(BIN)/python -m chaos --instances $(INSTANCES) $(foreach s,$(SEED),--seed $(s))

# The API fuzzed from its OpenAPI description on a local stack; EXAMPLES per route.
EXAMPLES ?= 300
fuzz: $(STAMP)
	$(BIN)/python -m tests.e2e.fuzz --examples $(EXAMPLES)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

agent-config: $(STAMP)
	@$(BIN)/python -m tools.console agent-config

# Region: REGION=, else AWS_REGION / AWS_DEFAULT_REGION; a clear message if none.
package: $(STAMP)
	$(BIN)/python -m infra.package --stage $(STAGE) $(if $(REGION),--region $(REGION)) --out build

rehearse: $(STAMP)
	$(BIN)/python -m infra.rehearse

deploy: $(STAMP)
	$(BIN)/python -m infra.deploy --stage $(STAGE) $(if $(REGION),--region $(REGION)) $(if $(BUCKET),--bucket $(BUCKET))

# Deletes the stage's stack; the tables holding data are retained.
remove: $(STAMP)
	$(BIN)/python -m infra.deploy --delete --stage $(STAGE) $(if $(REGION),--region $(REGION))

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) build .pytest_cache .mypy_cache .ruff_cache .hypothesis
