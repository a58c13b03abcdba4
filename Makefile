# The README's commands. Each sets itself up: a virtualenv in .venv with the pinned
# requirements, rebuilt when requirements change. `make run` installs only what running
# needs (RUN_STAMP); the development toolchain comes with every other target (STAMP).
# Python 3.13, as the Lambda runtime (python3.13): Chalice takes the runtime from the
# interpreter that packages. Each candidate is asked its version, because a pyenv shim
# named python3.13 on PATH may not run 3.13. Evaluated only when the venv is (re)built.
PYTHON_VERSION := 3.13
PYTHON_CANDIDATES = python$(PYTHON_VERSION) \
	$(wildcard $(HOME)/.pyenv/versions/$(PYTHON_VERSION)*/bin/python$(PYTHON_VERSION)) \
	$(wildcard /usr/local/bin/python$(PYTHON_VERSION) /opt/homebrew/bin/python$(PYTHON_VERSION)) \
	python3
IS_WANTED = import sys; print(sys.executable if sys.version_info[:2] == (3, 13) else "")
PYTHON ?= $(firstword $(foreach p,$(PYTHON_CANDIDATES),$(shell $(p) -c '$(IS_WANTED)' 2>/dev/null)))
NO_PYTHON = no Python $(PYTHON_VERSION) found: install it (pyenv install $(PYTHON_VERSION), or your OS's python$(PYTHON_VERSION) package) or pass PYTHON=/path/to/python$(PYTHON_VERSION)
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

.PHONY: run test docs bench chaos fuzz lint typecheck package agent-config rehearse deploy remove clean

# A virtualenv on another Python (an older checkout's 3.11) is made again. No bytecode at
# install: compiling all of moto's dependencies took over half of the first start; Python
# compiles what the stack imports, once, as it imports it.
$(RUN_STAMP): requirements.txt requirements-run.txt cli/pyproject.toml kit/pyproject.toml .python-version
	@test -n "$(PYTHON)" || { echo "make: $(NO_PYTHON)" >&2; exit 1; }
	$(BIN)/python -c '$(IS_WANTED)' 2>/dev/null | grep -q . || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade "pip<26.3"  # chalice 1.34 requires pip<26.3
	$(BIN)/python -m pip install --quiet --no-compile -r requirements-run.txt
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP) requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

$(CHECKOV_STAMP): requirements-checkov.txt
	@test -n "$(PYTHON)" || { echo "make: $(NO_PYTHON)" >&2; exit 1; }
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

# The documentation site, rebuilt on every change (tests/unit/test_docs.py builds it --strict).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve -a 127.0.0.1:8001

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
	rm -rf $(VENV) $(CHECKOV_VENV) build site .pytest_cache .mypy_cache .ruff_cache .hypothesis
