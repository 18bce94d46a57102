"""One simulated device of a fleet: the agent's own composition root
(edge_agent/gateway/agent.py: core Device, durable store on real files, durable
sequencer, uplink over TLS with its backoff) with readings from the
scenario physics instead of serial ports.

A thousand agent processes do not fit on two cores; a thousand Agents in
one asyncio process do, because what a process would add (an interpreter,
a serial port) is not what a fleet test is about. Each device still has
its own identity, its own store directory and its own MQTT connection, so
what the broker and the receiver see is a thousand devices.

The physics are sampled by the fleet's one ticker (``sample``), not a task
per sensor: a reading is due every sensor period, stamped with the wall
clock, fed through ``Device.ingest`` and dispatched as the agent does
(store, flush, wake the uplink). A sensor whose component's power output
the health engine cut (quarantine) goes silent, as on the bench.
"""

import logging

from edge_agent.gateway.agent import Agent
from edge_agent.gateway.gpio import SimulatedGpio


class FleetDevice(Agent):
    def __init__(self, board, identity, broker, store_dir, models, start_ms, store_options=None,
                 telemetry_interval_ms=10000, jitter=True, on_connect=None, agent_options=None):
        gpio = SimulatedGpio(board.outputs) if getattr(board, "outputs", None) else None
        super().__init__(board, identity, broker, store_dir, store_options=store_options, gpio=gpio,
                         shutdown_grace_s=0, telemetry_interval_ms=telemetry_interval_ms, **(agent_options or {}))
        self.device_id = identity.device_id
        # Readings come from physics, not from serial ports.
        self.sources = []
        self.models = models  # sensor id -> simulator.hardware.physics.PhysicalSensor
        # Sensors start at staggered phases so the fleet's readings do not
        # all land on the same tick.
        self.next_due = dict((sid, start_ms + (hash_phase(identity.device_id, sid) % m.period_ms))
                             for sid, m in models.items())
        self.uplink.jitter = jitter
        if on_connect is not None:
            self.uplink.on_connect = lambda: on_connect(self)
        self.readings = 0

    def sample(self, now_ms):
        """Feed every reading due by ``now_ms`` (at most one per sensor: a
        ticker that fell behind does not replay the past in a burst)."""
        for sensor_id, model in self.models.items():
            due = self.next_due[sensor_id]
            if due > now_ms:
                continue
            self.next_due[sensor_id] = max(due + model.period_ms, now_ms - model.period_ms + 1)
            power = model.power_output
            if power and self.gpio is not None and not self.gpio.is_on(power):
                continue
            reading = model.sample(now_ms)
            if reading is not None:
                self.readings += 1
                self._dispatch(self.device.ingest(reading, now_ms))

    def last_seq(self):
        """The last seq this device issued (its signals are 1..last_seq)."""
        return self.sequencer.next_seq - 1

    def finish(self, now_ms):
        """Stop sampling: send the pending telemetry batch to the store."""
        self.models = {}
        self._dispatch(self.device.flush(now_ms))


def hash_phase(device_id, sensor_id):
    # Deterministic (string hash() is salted per process).
    value = 0
    for ch in device_id + "/" + sensor_id:
        value = (value * 131 + ord(ch)) & 0x7FFFFFFF
    return value


def quiet_agent_logs():
    """A thousand devices each logging every alert and reconnect would bury
    the summary: the fleet reports those itself."""
    for name in ("edge_agent.gateway.agent", "edge_agent.gateway.uplink", "edge_agent.gateway.downlink"):
        logging.getLogger(name).setLevel(logging.ERROR)
