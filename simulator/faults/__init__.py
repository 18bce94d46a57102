"""Fault tools: fault_proxy.py (the network between agent and broker:
partition, reset, latency, loss, on command), small_fs.py (a small tmpfs
filled to the last byte, for a really full disk)."""
