# Everything a fresh machine needs: `make demo` and `make test` create .venv themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.medfeat-installed
TSTAMP := $(VENV)/.medfeat-test-installed

.PHONY: demo test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(TSTAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP) $@

demo: $(STAMP)
	$(VENV)/bin/medfeat demo

test: $(TSTAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/extract_speed.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
