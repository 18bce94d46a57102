"""Fleet mode (`edge-agent sim fleet`): run.py (N devices against one real
mosquitto and the receiver), spec.py (fleet files), device.py (one
simulated device), broker.py (the fleet's mosquitto), cli.py (the
command's entry: load, run, print the figures)."""
