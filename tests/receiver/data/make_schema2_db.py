"""Writes schema2.sqlite: a receiver database as edge-agent wrote it before
PostgreSQL (schema version 2, commit 34a301b), for the migration test
(tests/receiver/test_storage_backends.py). Run from a checkout of that
commit:  PYTHONPATH=. python tests/receiver/data/make_schema2_db.py OUT

Signals go through that receiver's own handler with real keys (made in a
temporary directory and thrown away), and its fleet watch raises an incident
and queues advisories."""

import os
import sys
import tempfile

from edge_agent.core import signals as sg
from edge_agent.keys.identity import create_identity
from edge_agent.keys.operators import create_operator
from edge_agent.receiver import fleet
from edge_agent.receiver.registry import Registry
from edge_agent.receiver.service import Receiver
from edge_agent.receiver.storage import Storage

T0 = 1_800_000_000_000
MODEL = "EA-OLD"


def main(out, ids):
    registry = Registry()
    identities = {}
    for device_id in ("old-1", "old-2", "old-3"):
        identity = create_identity(os.path.join(ids, device_id), device_id)
        registry.add_entries(identity.registry_entry(model=MODEL))
        identities[device_id] = identity
    storage = Storage(out)
    operator = create_operator(os.path.join(ids, "operator"), "old-ops")
    watch = fleet.FleetWatch(registry, storage.db, fleet.FleetSettings(k=2, fraction=0), operator,
                             clock=lambda: T0)
    receiver = Receiver(None, registry, storage, fleet=watch)

    def send(device_id, seq, kind, body, time_ms):
        signal = sg.Signal(kind, sg.PRIORITY_HIGH, time_ms, body, device_id, seq)
        return receiver.handle(sg.topic(device_id, kind), identities[device_id].seal(signal.encode()), time_ms)

    storage.begin()
    for device_id in identities:
        send(device_id, 1, sg.KIND_BIRTH, {0: "old"}, T0)
        for seq in (2, 3, 5):  # 4 lost
            send(device_id, seq, sg.KIND_TELEMETRY, {0: [[T0 + seq, "t", 20.5, 0]]}, T0 + seq)
    alert = {sg.A_CONDITION: "stuck", sg.A_COMPONENT: "cabinet_fan", sg.A_SENSOR: "fan_speed", sg.A_ACTIVE: True,
             sg.A_TEXT: "fan stuck", sg.A_SEVERITY: "warning"}
    send("old-1", 6, sg.KIND_ALERT, alert, T0 + 60_000)
    send("old-2", 6, sg.KIND_ALERT, alert, T0 + 61_000)  # the second: an incident, advisories queued
    receiver.handle("ea/v1/old-1/alert", b"\xffgarbage", T0)  # a rejection
    storage.commit()
    assert len(watch.raised) == 1 and watch.unsent()
    storage.db.execute("VACUUM")
    storage.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as keys:
        main(sys.argv[1], keys)
