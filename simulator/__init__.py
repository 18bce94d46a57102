"""The hardware simulator: the device's hardware, its broker and its
network in software, for development, CI and the demo.

- hardware/: virtual hardware: sensor physics and a battery, the sensor
  board on a pseudo-terminal, a Modbus RTU slave (pymodbus) on a pty;
- scenarios/: the scenario library (*.toml) and the code that loads
  (spec), runs (virtual: on a virtual clock; live/: real processes),
  checks (expect) and reports (report) it; suite runs `sim run`;
- fleet/: N devices against one broker and receiver (`sim fleet`);
- faults/: fault tools: the TCP fault proxy, a small full file system;
- fixtures/: what a run stands on: a real mosquitto, a throwaway PKI,
  child processes;
- demo/: `make demo` (python -m simulator.demo).
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout

# The compiled per-reading path, when `make accelerate` built it from these
# very sources (simulator/accelerate.py); otherwise the plain modules.
from . import accelerate  # noqa: E402

accelerate.enable()
