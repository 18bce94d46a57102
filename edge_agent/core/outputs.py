"""GPIO outputs as the core sees them: who wants each line off, and when.

An output (a power enable, from ``[outputs.ID]``) is ON unless someone
holds it off. Holders are named, so independent reasons combine and undo
cleanly:

    "quarantine:<component>"   the component's quarantine cuts its power
    "duty:<component>"         the off part of a reduced duty cycle
    "mode:<mode>"              a degraded mode cuts it

A line goes back on only when its last holder lets go (releasing the fan's
quarantine does not power a heater the degraded mode still holds off).
Changes come out as ``SetOutput`` for the composition root to apply to its
GPIO adapter (edge_agent/gateway/gpio.py: gpiod on a Pi, simulated lines in tests).
"""


class SetOutput:
    """Drive GPIO output ``output`` to logical ``on``. ``chip``, ``line``
    and ``active_low`` come from the board, so an adapter needs nothing
    else; ``reason`` says why, for the log and the audit trail."""

    __slots__ = ("output", "on", "chip", "line", "active_low", "reason", "time_ms")

    # Also readable as a Notice (level, code, text), so an adapter that
    # does not drive GPIO yet logs it instead of failing on it.
    level = "warning"
    code = "gpio"

    def __init__(self, output, on, chip, line, active_low, reason, time_ms):
        self.output = output
        self.on = on
        self.chip = chip
        self.line = line
        self.active_low = active_low
        self.reason = reason
        self.time_ms = time_ms

    @property
    def text(self):
        return "gpio %s (%s line %d) -> %s: %s" % (self.output, self.chip, self.line, "on" if self.on else "off", self.reason)

    def __repr__(self):
        return "SetOutput(%s %s: %s)" % (self.output, "on" if self.on else "off", self.reason)


class WriteRegisters:
    """Write Modbus holding registers on a bus (a quarantine action: stop a
    drive, close a valve). The Device queues it on the bus's Modbus master
    itself; it also comes out as an output so the adapter logs it, and the
    master's WriteResult (tagged with ``reason``) says whether the slave
    confirmed it."""

    __slots__ = ("bus", "slave", "address", "values", "reason", "time_ms")

    level = "warning"
    code = "modbus-write"

    def __init__(self, bus, slave, address, values, reason, time_ms):
        self.bus = bus
        self.slave = slave
        self.address = address
        self.values = values
        self.reason = reason
        self.time_ms = time_ms

    @property
    def text(self):
        return "modbus write bus %s slave %d register %d <- %s: %s" % (
            self.bus, self.slave, self.address, ",".join(str(v) for v in self.values), self.reason)

    def __repr__(self):
        return "WriteRegisters(%s/%d@%d <- %r: %s)" % (self.bus, self.slave, self.address, self.values, self.reason)


class Outputs:
    def __init__(self, board):
        self.board = board
        self.holders = {}  # output id -> list of holder names
        for output_id in board.outputs:
            self.holders[output_id] = []

    def is_on(self, output_id):
        return not self.holders[output_id]

    def hold(self, output_id, holder, reason, now_ms, out):
        """``holder`` wants ``output_id`` off; emit SetOutput if that changes it."""
        holders = self.holders[output_id]
        if holder in holders:
            return
        holders.append(holder)
        if len(holders) == 1:
            out.append(self._set(output_id, False, reason, now_ms))

    def release(self, output_id, holder, reason, now_ms, out):
        holders = self.holders[output_id]
        if holder not in holders:
            return
        holders.remove(holder)
        if not holders:
            out.append(self._set(output_id, True, reason, now_ms))

    def _set(self, output_id, on, reason, now_ms):
        o = self.board.outputs[output_id]
        return SetOutput(output_id, on, o.chip, o.line, o.active_low, reason, now_ms)
