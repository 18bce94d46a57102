"""The cloud side: the reference receiver (subscribe, verify, dedupe,
detect gaps, store) and the tools that read devices' signals.

service.py (the MQTT loop), registry.py (devices' keys: verify and bind
kid, device and topic), storage.py (the storage interface; storage_sqlite.py,
storage_postgres.py its backends), fleet.py (fleet-wide
escalation and advisories), display.py (tables and reports), watch.py
(`edge-agent watch`). See docs/receiver.md."""
