"""The hardware simulator: the device's hardware, its broker and its
network in software, for development, CI and the demo.

- sensor_board: a virtual sensor board speaking the serial line protocol
  on a pseudo-terminal, with injectable faults;
- broker: a real mosquitto on a free loopback port with its own config;
- pki: a throwaway CA and certificates for TLS between them;
- demo: `make demo`, the whole device end to end.
"""
