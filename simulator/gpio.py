"""Simulated GPIO outputs: the stand-in for ``edge_agent.gpio.GpiodOutputs``.

Same interface (``apply(SetOutput)``, ``close()``), so the composition root,
the demo and the tests drive it exactly as the Pi drives real lines. It
keeps the physical level of every line (``active_low`` applied, as a
multimeter on the pin would show) and the history of changes, and lets
virtual sensors ask whether their power is on.
"""


class SimulatedGpio:
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
