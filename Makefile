# secured_bio: the two commands a new user needs are `make demo` and `make test`.
# Both create .venv themselves; a second run does not reinstall (stamp file).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.secured_bio-installed
CORES ?= 2
PYTEST_ARGS ?=
# Reference tools from Debian used by cross-check tests (plink2/plink1.9 for GWAS, bcftools/tabix for VCF)
# and chromium, the headless browser that checks the results page (results/index.html) renders.
SYSTEM_TOOLS := plink2 plink1.9 bcftools tabix chromium
# PostgreSQL server for the hub's tests (its initdb is not on PATH: checked by file below).
SYSTEM_SERVERS := postgresql
# Real (1000 Genomes) VCF/BCF files for ingest tests: Debian's bio-eagle-examples (1.5 MB).
SYSTEM_DATA := bio-eagle-examples
REAL_VCF_DIR := /usr/share/doc/bio-eagle/examples
# Rules and tests call the `secured-bio` command: put the venv's bin/ first on PATH.
export PATH := $(abspath $(VENV))/bin:$(PATH)
export FLWR_TELEMETRY_ENABLED := 0
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION := 1

.PHONY: help install sysdeps demo hub report test lint docs constraints clean distclean

help:  ## show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(STAMP) sysdeps  ## create .venv and install secured_bio with every dependency

# torch first, exactly 2.13.0 (the CPU build on this machine's disk; anything else pulls CUDA).
# crypten with --no-deps (its metadata requires the deprecated `sklearn`; its real needs are
# in pyproject.toml). Everything else is pinned by constraints.txt.
# pip's resolver then prints "ERROR: pip's dependency resolver ..." with one "crypten ...
# requires X, which is not installed" line per requirement crypten declares: expected, and not
# a failure, so PIP_FILTER replaces exactly those lines by one note (any other conflict and
# pip's exit status pass through).
PIP_FILTER := awk '/^ERROR: pip.s dependency resolver does not currently/ {hdr=$$0; next} \
  /^crypten [^ ]+ requires [^ ]+, which is not installed[.]$$/ {n++; next} \
  hdr != "" && / requires / {print hdr; hdr=""} {print} \
  END {if (n) print "note: crypten is installed without its declared dependencies on purpose (" \
  n " of them, e.g. the deprecated sklearn package); pip reports them as missing, which is " \
  "expected: this is not an error."}'
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install --no-deps crypten==0.4.1
	set -o pipefail; $(PIP) install -c constraints.txt -e ".[dev,docs]" 2>&1 | $(PIP_FILTER)
	@touch $(STAMP)

sysdeps:  ## install the Debian reference tools (plink2, plink1.9, bcftools, tabix, chromium), PostgreSQL (hub tests) and real test VCFs when missing
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	test -f $(REAL_VCF_DIR)/EUR_test.vcf.gz || missing="$$missing $(SYSTEM_DATA)"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing $(SYSTEM_SERVERS)"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing reference tools and data:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_TOOLS) $(SYSTEM_SERVERS) $(SYSTEM_DATA) >/dev/null) \
	      || echo "warning: could not install$$missing; reference cross-checks will fail"; \
	  else echo "warning: missing$$missing (install them: apt-get install $(SYSTEM_TOOLS) $(SYSTEM_SERVERS) $(SYSTEM_DATA))"; fi; \
	fi

demo: install  ## run every pilot on its demo cohort (3 sites) with Snakemake and print a summary
	$(VENV)/bin/snakemake --cores $(CORES) --printshellcmds
	@echo; cat results/summary.md
	@echo "Each pilot's outputs: results/<pilot>/run/; logs: logs/; Snakemake report: make report"

HUB_PORT ?= 8400
hub: install  ## start the Innohub demo (hub + 3 site agents + demo users) on http://127.0.0.1:8400
	$(VENV)/bin/secured-bio hub demo --port $(HUB_PORT) --data-dir hub-demo

report: install  ## Snakemake HTML report of the last demo run (results/report.html)
	$(VENV)/bin/snakemake --report results/report.html

test: install  ## run the test suite (unit, reference cross-checks, Snakemake runs)
	$(PY) -m pytest -n $(CORES) --durations=15 $(PYTEST_ARGS)

docs: install  ## build the documentation site (docs/_build/html), executing every tutorial
	$(PY) -m sphinx -b html -E -W --keep-going -n docs docs/_build/html
	@echo "Open docs/_build/html/index.html"

lint: install  ## ruff, mypy and snakemake --lint
	$(VENV)/bin/ruff check secured_bio pilots tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/snakemake --lint

constraints: install  ## regenerate constraints.txt from the current .venv
	$(PIP) freeze --exclude-editable | grep -v -i -E '^(secured-bio|torch)==' > constraints.txt

clean:  ## remove workflow outputs
	rm -rf results logs .snakemake hub-demo

distclean: clean  ## also remove the virtual environment
	rm -rf $(VENV)
