"""Live scenario runs: run.py (the run: mosquitto, receiver, fault proxy,
the agent and its sensor board as real processes on real time), board.py
(the scenario's physics on a real pty), modbus.py (pymodbus slaves),
faults.py (each fault applied for real)."""
