"""Writes schema3.sqlite: a receiver database as edge-agent wrote it before
tickets and the webhook outbox (schema version 3, commit 1b3659c), for the
migration test (tests/receiver/test_tickets.py). Run from a checkout of
that commit:  PYTHONPATH=. python tests/receiver/data/make_schema3_db.py OUT

An alert raised on old-1 (its ticket did not exist then) and one raised and
cleared on old-2 go through that receiver's own handler with real keys
(made in a temporary directory and thrown away)."""

import os
import sys
import tempfile

from edge_agent.core import signals as sg
from edge_agent.keys.identity import create_identity
from edge_agent.receiver.registry import Registry
from edge_agent.receiver.service import Receiver
from edge_agent.receiver.storage import Storage

T0 = 1_800_000_000_000


def main(out, ids):
    registry = Registry()
    identities = {}
    for device_id in ("old-1", "old-2"):
        identity = create_identity(os.path.join(ids, device_id), device_id)
        registry.add_entries(identity.registry_entry(model="EA-OLD"))
        identities[device_id] = identity
    storage = Storage(out)
    receiver = Receiver(None, registry, storage)

    def send(device_id, seq, active):
        body = {sg.A_CONDITION: "stuck", sg.A_COMPONENT: "cabinet_fan", sg.A_SENSOR: "fan_speed",
                sg.A_ACTIVE: active, sg.A_TEXT: "fan stuck", sg.A_SEVERITY: "warning", sg.A_ACTION: "replace the fan"}
        signal = sg.Signal(sg.KIND_ALERT, sg.PRIORITY_HIGH, T0 + seq, body, device_id, seq)
        return receiver.handle(sg.topic(device_id, sg.KIND_ALERT), identities[device_id].seal(signal.encode()), T0)

    storage.begin()
    send("old-1", 1, True)
    send("old-2", 1, True)
    send("old-2", 2, False)
    storage.commit()
    storage.db.execute("VACUUM")
    storage.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as keys:
        main(sys.argv[1], keys)
