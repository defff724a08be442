# The README's quick start: `make demo` and `make test`. Both create the venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
# torch==2.13.0 is in the same pip command as everything else (see pyproject.toml for why)
EXTRAS ?= ray,cpu,test

.PHONY: setup test demo
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

test: setup
	$(PY) -m pytest

demo: setup
	$(VENV)/bin/teran demo --config configs/demo.yaml
