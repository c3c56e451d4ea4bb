# Everything a fresh machine needs: `make demo` and `make test` create .venv themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.medfeat-installed
TSTAMP := $(VENV)/.medfeat-test-installed

.PHONY: demo test bench clean

# A Python without venv/ensurepip (Debian's python3 without python3-venv) gets one line saying what
# to install, and no half-made .venv is left to break the next attempt.
$(PY):
	@$(PYTHON) -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "make: $(PYTHON) needs to be Python >= 3.11 with venv and ensurepip (Debian/Ubuntu: apt-get install python3-venv; or PYTHON=/path/to/python3.11 make ...)" >&2; exit 2; }
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "make: could not create $(VENV) with $(PYTHON)" >&2; exit 2; }
	@$(PY) -m pip install --quiet --upgrade pip || { rm -rf $(VENV); echo "make: pip could not be set up in $(VENV)" >&2; exit 2; }

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	$(VENV)/bin/medfeat warmup
	touch $@

$(TSTAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	$(VENV)/bin/medfeat warmup
	touch $(STAMP) $@

demo: $(STAMP)
	$(VENV)/bin/medfeat demo

test: $(TSTAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/extract_speed.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
