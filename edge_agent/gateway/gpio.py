"""GPIO outputs on a Raspberry Pi (libgpiod v2 through the ``gpiod`` package).

The core decides (``SetOutput`` from the health engine: a quarantine cut a
power enable, a degraded mode switched a heater off); this adapter only
drives lines. Every backend has the same two methods, so the composition
root does not care which one it holds:

    outputs.apply(action)   # action: edge_agent.core.outputs.SetOutput
    outputs.close()

Backends: ``GpiodOutputs`` (a Pi) and ``SimulatedGpio`` (the simulator,
the tests and `run --gpio simulated`), both here. Hardware comes in as constructor arguments:
the board's ``[outputs]`` table (chip path, line offset, active_low).

Every line starts ON (logical active): a device that boots powers its parts,
and the health engine only ever asks to cut one it has judged.
"""


class GpioError(Exception):
    """GPIO cannot be used here; the message says why and what to do."""


def _gpiod():
    try:
        import gpiod
        from gpiod.line import Direction, Value
    except ImportError:
        raise GpioError(
            "the gpiod package (libgpiod v2 Python bindings) is not installed: "
            "pip install 'gpiod>=2.1' (on Raspberry Pi OS also: apt install libgpiod2)"
        ) from None
    return gpiod, Direction, Value


def check_chips(outputs, exists=None):
    """Raise GpioError naming every missing chip, before touching any."""
    import glob
    import os

    exists = exists or os.path.exists
    missing = sorted({o.chip for o in outputs.values() if not exists(o.chip)})
    if missing:
        present = sorted(glob.glob("/dev/gpiochip*"))
        raise GpioError(
            "no GPIO chip at %s (present: %s). On a Raspberry Pi the chips are /dev/gpiochip0 and up; "
            "this kernel may lack GPIO support (CONFIG_GPIOLIB) or the user may lack access "
            "(add it to the 'gpio' group). Without hardware, run with the simulator's GPIO."
            % (", ".join(missing), ", ".join(present) or "none")
        )


class GpiodOutputs:
    """Drive the board's outputs through libgpiod v2, one request per chip."""

    def __init__(self, outputs, consumer="edge-agent"):
        gpiod, Direction, Value = _gpiod()
        self._value = Value
        self.outputs = dict(outputs)
        check_chips(self.outputs)
        self._requests = {}
        by_chip = {}
        for output in self.outputs.values():
            by_chip.setdefault(output.chip, []).append(output)
        try:
            for chip, lines in sorted(by_chip.items()):
                config = {
                    o.line: gpiod.LineSettings(direction=Direction.OUTPUT, active_low=o.active_low, output_value=Value.ACTIVE)
                    for o in lines
                }
                self._requests[chip] = gpiod.request_lines(chip, consumer=consumer, config=config)
        except OSError as exc:
            self.close()
            raise GpioError("cannot request GPIO lines on %s: %s (another program may hold them: gpioinfo shows who)" % (chip, exc)) from None

    def apply(self, action):
        output = self.outputs[action.output]
        value = self._value.ACTIVE if action.on else self._value.INACTIVE
        self._requests[output.chip].set_value(output.line, value)

    def close(self):
        for request in self._requests.values():
            request.release()
        self._requests = {}


class SimulatedGpio:
    """Simulated output lines: for the simulator, the tests and `run --gpio
    simulated` (developing without GPIO hardware).

    Same interface as GpiodOutputs (``apply(SetOutput)``, ``close()``), so
    the composition root drives it exactly as the Pi drives real lines. It
    keeps the physical level of every line (``active_low`` applied, as a
    multimeter on the pin would show) and the history of changes, and lets
    virtual sensors ask whether their power is on.
    """

    def __init__(self, outputs):
        self.outputs = dict(outputs)
        # Logical state; every line starts on, like the gpiod backend.
        self.state = dict((output_id, True) for output_id in self.outputs)
        self.history = []  # (time_ms, output id, on, physical level)

    def apply(self, action):
        if action.output not in self.outputs:
            raise KeyError("no output %r on this board (have: %s)" % (action.output, ", ".join(sorted(self.outputs))))
        self.state[action.output] = action.on
        self.history.append((action.time_ms, action.output, action.on, self.level(action.output)))

    def is_on(self, output_id):
        return self.state[output_id]

    def level(self, output_id):
        """The pin's physical level: 1 high, 0 low."""
        on = self.state[output_id]
        return int(on != self.outputs[output_id].active_low)

    def describe(self):
        return ", ".join(
            "%s (%s line %d) %s" % (o, self.outputs[o].chip, self.outputs[o].line, "on" if self.state[o] else "OFF")
            for o in sorted(self.outputs)
        )

    def close(self):
        pass
