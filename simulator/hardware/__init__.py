"""Virtual hardware: physics.py (sensors with physical behaviour and faults,
on a virtual clock), battery.py (a battery that sags, recovers and ages),
sensor_board.py (the line protocol on a pseudo-terminal), modbus_slave.py
(pymodbus's RTU server on a pty)."""
