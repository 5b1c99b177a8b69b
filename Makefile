# Two commands on a fresh machine: `make demo` (a real sweep on embedded Ray) and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch that lies on the development machines; an unpinned torch would pull a multi-GB CUDA build.
TORCH ?= torch==2.13.0

.PHONY: demo test install clean

$(BIN)/sweep: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(BIN)/sweep

install: $(BIN)/sweep

demo: install
	$(BIN)/sweep demo --results results

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf results .pytest_cache
