# Two commands for a fresh machine (Python 3.11, no ROS installed):
#   make demo   set up .venv and run the main job on the built-in defaults
#   make test   set up .venv and run the whole test suite
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The real ROS 2 CLI tools (ros2 launch/run/topic/param, launch_ros) as wheels, for machines
# without a ROS distro: installed into the venv when the folder exists. On a distro they come
# with the distro; with neither, the tests that need them skip and say why (pytest -rs).
ROS_TOOLS   ?= ../shared/ros-tools
TOOLS_STAMP := $(if $(wildcard $(ROS_TOOLS)/install),$(VENV)/.ros-tools)

# ROS traffic never leaves this machine; tests pick their own private ROS_DOMAIN_IDs.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_DOMAIN_ID ?= 61
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test bench clean

setup: $(STAMP) $(TOOLS_STAMP)

$(STAMP): requirements.txt requirements-test.txt setup.py package.xml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt -r requirements-test.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m mmcert_ros.cpu_kernels
	touch $@

$(VENV)/.ros-tools: $(STAMP) $(ROS_TOOLS)/install $(wildcard $(ROS_TOOLS)/wheels/*.whl)
	$(ROS_TOOLS)/install $(VENV)
	touch $@

demo: $(STAMP)
	$(BIN)/mmcert-ros demo

test: setup
	$(BIN)/python -m pytest -q -rs test

bench: $(STAMP)
	$(BIN)/mmcert-ros bench

clean:
	rm -rf $(VENV) build install log *.egg-info
