"""The agent on a Pi-class gateway (CPython, asyncio): agent.py is the
composition root that wires the portable core to the adapters here:
serial_source (pyserial), uplink (aiomqtt to the broker), store_posix (the
store's files), gpio (libgpiod, or simulated lines), console_server (the
technician console on serial ports and a Unix socket), downlink and
downlink_setup (signed commands), config_update (signed remote config)."""
