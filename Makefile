# The project's entry points. A fresh machine needs only Python 3.11+ and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# No test or command may reach a network: LiteLLM reads its bundled price
# list, Hugging Face loads only what is on disk.
export LITELLM_LOCAL_MODEL_COST_MAP := True
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install serve test lint format redis audit browser bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# A local development key unless one is set; with CONFIG=file.yaml its tenants are used.
THINKROUTE_API_KEY ?= sk-thinkroute-local-dev
CONFIG ?=
serve: install
	THINKROUTE_API_KEY=$(THINKROUTE_API_KEY) $(BIN)/thinkroute serve $(if $(CONFIG),--config $(CONFIG))

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

redis: install
	$(BIN)/python -m tests.redis_server ensure

# Known-vulnerable installed packages fail the build. Not pip-audit: from these machines
# only PyPI's project API answers, and pip-audit then skips every package and passes
# (tests/dependency_audit.py says more). A slow PyPI fails the audit after --deadline-s
# with a message, never passes it. An advisory judged not to apply goes here as
# `--ignore-vuln ID`, with a comment saying why thinkroute cannot reach it.
AUDIT_IGNORE :=
audit: install
	$(BIN)/python -m tests.dependency_audit --deadline-s 180 $(AUDIT_IGNORE)

# The dashboard's browser test drives Debian's chromium and its driver (never a downloaded
# browser) and fails without them. Installed here when missing (as root, the package lists
# refreshed only if the install cannot find the packages without it).
BROWSER_PACKAGES := chromium chromium-driver
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y --no-install-recommends $(BROWSER_PACKAGES) \
		|| { apt-get update && apt-get install -y --no-install-recommends $(BROWSER_PACKAGES); } \
		|| { echo "make: install Debian's $(BROWSER_PACKAGES) for the dashboard's browser test"; exit 1; }; \
	fi

test: lint redis audit browser
	$(BIN)/pytest

bench: install
	$(BIN)/python bench/route_latency.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
