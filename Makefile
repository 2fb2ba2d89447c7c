# The README's commands. `make demo` and `make test` work on a fresh machine with Python 3.11+.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test lint bench bench-side bench-full services clean

$(STAMP): pyproject.toml
	@echo "make: creating $(VENV) and installing LineLedger with its test tools (1-5 minutes the first time)"
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	bash -o pipefail -c '$(PY) -m pip install --progress-bar off -e ".[test]" | grep --line-buffered -E "^(Collecting|Successfully installed)" | cut -c1-100'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

services:
	bash scripts/ensure-services

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: $(STAMP) services lint
	$(PY) -m pytest

# Quick sizes of the #6 benchmarks here; `make bench-full` runs them at the issue's sizes.
bench: $(STAMP)
	$(PY) bench/bench_foundation.py
	$(PY) bench/bench_labels.py
	$(PY) bench/bench_reconcile.py --agents 4 --events 2000
	$(PY) bench/bench_issue_marks.py --serials 5000 --rounds 3

# #8: the hot paths beside their yardsticks (needs wrk: apt-get install wrk), then each alone.
bench-side: $(STAMP) services
	$(PY) bench/bench_side_by_side.py --issue --leases
	$(PY) bench/bench_ingest.py
	$(PY) bench/bench_edge_rss.py --serials 200000

bench-full: $(STAMP) services
	$(PY) bench/bench_reconcile.py --runs 3
	$(PY) bench/bench_reconcile.py --runs 3 --db postgresql
	$(PY) bench/bench_issue_marks.py

clean:
	rm -rf $(VENV) demo-run bench-run .pytest_cache .mypy_cache .ruff_cache .hypothesis
