# The two commands of the README. Both create .venv if missing and install the project into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/speeltuin demo

# Two worker processes, each test file whole in one of them (its module-scoped servers are started once): most
# tests wait on sockets and subprocesses, so two halve the wall time even on two cores.
test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# Every benchmark, one after the other (they print figures; none asserts a speed). Takes several minutes.
bench: $(STAMP)
	set -e; for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script; done
	$(BIN)/python benchmarks/simulator_throughput.py --postgresql

clean:
	rm -rf $(VENV) out .pytest_cache
