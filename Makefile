# Two commands for a fresh machine (Python 3.11, no ROS installed):
#   make demo   set up .venv and run the main job on the built-in defaults
#   make test   set up .venv and run the whole test suite
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# ROS traffic never leaves this machine; tests pick their own private ROS_DOMAIN_IDs.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_DOMAIN_ID ?= 61
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-test.txt setup.py package.xml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt -r requirements-test.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

demo: $(STAMP)
	$(BIN)/mmcert-ros demo

test: $(STAMP)
	$(BIN)/python -m pytest -q test

bench: $(STAMP)
	$(BIN)/mmcert-ros bench

clean:
	rm -rf $(VENV) build install log *.egg-info
