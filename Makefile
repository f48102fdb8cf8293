# costwarden — every target installs what it needs on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TOOLS ?= .tools
PYTEST_ARGS ?=

.PHONY: install tools test lint run sim bench demo clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

tools: $(TOOLS)/kubectl

$(TOOLS)/kubectl: tools/fetch_kube_tools.py | install
	$(PY) tools/fetch_kube_tools.py $(TOOLS)

test: install tools
	KUBECTL=$(abspath $(TOOLS))/kubectl HELM=$(abspath $(TOOLS))/helm $(PY) -m pytest $(PYTEST_ARGS)

# The telemetry tests run a real Prometheus server (Debian's package), installed here when missing;
# without root or apt-get this says so and those tests explain themselves (skip, or fail under CI).
.PHONY: prometheus
test: prometheus
prometheus:
	@command -v prometheus >/dev/null || [ -n "$$PROMETHEUS" ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } \
	  || echo "make: prometheus is not installed (installing it needs root and apt-get); set PROMETHEUS=/path/to/prometheus"

# The Slurm tests run a real single-node Slurm (tests/slurm_cluster.py): slurmctld, slurmd, the
# client commands, slurmrestd with the auth/jwt plugin (its tokens), munge, and slurmdbd on MariaDB
# so that sacct answers; Debian's packages, installed here when missing. Without root or apt-get
# this says so and those tests explain themselves (skip, or fail under CI).
SLURM_PACKAGES := munge slurmctld slurmd slurm-client slurmrestd slurm-wlm-jwt-plugin slurmdbd mariadb-server
.PHONY: slurm
test: slurm
slurm:
	@PATH="$$PATH:/usr/sbin:/sbin"; for b in munged slurmctld slurmd sbatch sacct slurmrestd slurmdbd mariadbd; do \
	  command -v $$b >/dev/null || missing="$$missing $$b"; done; \
	  ls /usr/lib/*/slurm-wlm/auth_jwt.so /usr/lib64/slurm/auth_jwt.so 2>/dev/null | grep -q . || missing="$$missing auth_jwt.so"; \
	  [ -z "$$missing" ] \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SLURM_PACKAGES); } \
	  || echo "make: Slurm is not installed (missing:$$missing; installing $(SLURM_PACKAGES) needs root and apt-get)"

# Fault injection (issue 12): the chaos scenario under every fault profile (bench/chaos.py, about
# 3 minutes: the stand-in's fault layer, a failing and a hanging webhook, Prometheus answering
# garbage), then the other chaos tests (tests/chaos: watch cuts, throttled actions, a billing export
# cut in half). Prints a Markdown table and JSON (bench/RESULTS.md, "Chaos"); fails if a profile
# does not converge like the fault-free run. make test runs the fast slice, tests/chaos/test_chaos.py.
.PHONY: chaos
chaos: install tools
	$(PY) bench/chaos.py $(CHAOS_PROFILES)
	KUBECTL=$(abspath $(TOOLS))/kubectl HELM=$(abspath $(TOOLS))/helm $(PY) -m pytest tests/chaos \
	  --ignore=tests/chaos/test_chaos.py $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check operator tests bench tools
	$(VENV)/bin/ruff format --check operator tests bench tools
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

run: install
	$(VENV)/bin/costwarden run $(ARGS)

sim: install
	$(VENV)/bin/costwarden sim serve --port 8765 --kubeconfig out/sim.kubeconfig

bench: install
	$(PY) bench/run.py

# The soak (issue 12): the real operator at 10,000 pods / 1,000 nodes / 1,000 budgets on the
# stand-in through SOAK_SECONDS (600) of pod churn and budget crossings, about 12 minutes with
# the seeding; prints JSON (bench/RESULTS.md, "Soak"). Smaller: COSTWARDEN_BENCH_PODS=1000
# COSTWARDEN_BENCH_NODES=100 COSTWARDEN_BENCH_BUDGETS=100 make soak SOAK_SECONDS=180
SOAK_SECONDS ?= 600
.PHONY: soak
soak: install
	$(PY) bench/soak.py --duration $(SOAK_SECONDS)

# Issue 12's long resilience runs (tests/resilience/test_campaign.py, about 10 minutes): the real
# operator killed with SIGKILL at every named point of a guardrail scenario and at random ones
# (40+ kills), and two replicas with the leader killed, paused and partitioned at six points.
# Figures to RESILIENCE_OUT (out/resilience.json); RESILIENCE_SEED=N draws other random points.
.PHONY: crash
crash: install
	RESILIENCE_CAMPAIGN=1 $(PY) -m pytest -s -p no:cacheprovider tests/resilience/test_campaign.py $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/costwarden demo $(ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache out

.PHONY: crd-copies chart-docs lock
crd-copies:  ## copy crds/costbudget.yaml (the source of truth) into the chart and the package
	cp crds/costbudget.yaml charts/costwarden/files/crds/costbudget.yaml
	cp crds/costbudget.yaml operator/costwarden/data/costbudget.yaml

chart-docs: install crd-copies  ## sync the CRD copies and regenerate the chart's README from values.yaml
	$(PY) tools/chart_readme.py charts/costwarden

lock: install  ## recompile requirements.lock (the image's dependencies) from pyproject.toml's runtime list
	$(PY) -m pip install -q 'uv>=0.5'
	$(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes -o requirements.lock

.PHONY: catalog
catalog: install  ## regenerate pricing/catalog.csv from the live price feeds (needs network and cloud credentials)
	$(PY) tools/make_catalog.py operator/costwarden/pricing/catalog.csv
