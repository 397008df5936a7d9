# One command per job, the same for a person and for CI. Every target sets itself up first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The Lambda runtime is python3.12, and numpy/scipy pins need it: use the same interpreter locally.
PYTHON_BOOT ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) $(shell python3.12 -c 'import sys; print(sys.executable)' 2>/dev/null))
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp
REQUIREMENTS := requirements.txt requirements-cli.txt requirements-cdk.txt requirements-dev.txt

export CDK_DISABLE_CLI_TELEMETRY := true
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# Nothing at run time talks to real AWS: tests and the demo use moto on 127.0.0.1.
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: help setup test lint format readme synth demo bench bench-quick clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup: $(STAMP) node_modules/.package-lock.json  ## create .venv and node_modules (a no-op when nothing changed)

$(STAMP): $(REQUIREMENTS) constraints.txt pyproject.toml
	@if [ -z "$(PYTHON_BOOT)" ]; then echo "make setup: Python 3.12 not found (set PYTHON_BOOT=/path/to/python3.12)" >&2; exit 1; fi
	@[ -x $(PY) ] || $(PYTHON_BOOT) -m venv $(VENV)
	@echo "make setup: installing pinned packages into $(VENV) (a few minutes the first time)"
	@# The machine's pip config lists extra local indexes; pip warns about each one it cannot read. Hide those.
	@set -o pipefail; $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt \
	  $(addprefix -r ,$(REQUIREMENTS)) 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
	@set -o pipefail; $(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e . \
	  2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
	@touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# One pytest worker a core (pytest-xdist): moto runs in-process or on a free port (port=0) in each worker, and
# the local synth cache is written aside and renamed, so workers never share a half-written file.
test: setup  ## run every test: unit, integration, infrastructure, end-to-end
	$(VENV)/bin/pytest -n auto

lint: setup  ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: setup  ## format the code
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

readme: setup  ## copy docs/demo.md, docs/decision-rule.md and docs/deploying.md into README.md's sections
	$(PY) scripts/sync_readme.py

.PHONY: bundle
bundle: setup  ## build the Lambda bundle into build/lambda-bundle/ (a no-op when its inputs are unchanged)
	$(PY) scripts/build_bundle.py

# SPEC=config/<service>.yaml picks the rollout spec (default: cdk.json's, config/mangaassist.yaml).
# cfn-lint W3005 ("dependency already enforced by GetAtt") is ignored: CDK adds an explicit DependsOn on a
# role next to its policy; it is redundant, not wrong, and not ours to remove. asl-validator checks both state
# machines' definitions (references resolved to literals first: scripts/validate_state_machines.py).
synth: setup bundle  ## synthesize the stack into cdk.out/ (offline, no Docker, no credentials), then cfn-lint and asl-validator it
	npx --no-install cdk synth --no-notices -q $(if $(SPEC),-c spec=$(SPEC))
	$(VENV)/bin/cfn-lint --ignore-checks W3005 -- cdk.out/*.template.json
	$(PY) scripts/validate_state_machines.py cdk.out/*.template.json

demo: setup  ## a whole rollout against moto on 127.0.0.1, in accelerated time: a regression rolled back, a healthy candidate promoted
	$(VENV)/bin/canarywise demo

bench: setup  ## decision-quality and cost benchmark; writes docs/benchmarks.md (QUICK=1: under 2 minutes)
	$(PY) -m bench.run $(if $(QUICK),--quick) $(if $(SEED),--seed $(SEED))

bench-quick: setup  ## the benchmark's quick mode (same as make bench QUICK=1)
	$(PY) -m bench.run --quick $(if $(SEED),--seed $(SEED))

clean:  ## remove build outputs (keeps .venv and node_modules)
	rm -rf cdk.out build reports .pytest_cache .mypy_cache .ruff_cache
