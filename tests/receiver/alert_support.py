"""Signed alerts for the ticket and webhook tests: a small fleet of real
identities (the ``fleet`` fixture: import it into the test module) and
alert messages as a device seals them. (Not a conftest.py here: tests
import the top conftest by that name.)"""

import pytest

from edge_agent.core import signals as sg
from edge_agent.keys.identity import create_identity
from edge_agent.receiver.registry import Registry

T0 = 1_800_000_000_000


def make_fleet(directory):
    """({device: identity}, Registry) of two pumps of model EA-PUMP."""
    identities = {d: create_identity(str(directory / d), d) for d in ("pump-1", "pump-2")}
    registry = Registry()
    registry.add_entries("\n".join(i.registry_entry(model="EA-PUMP") for i in identities.values()))
    return identities, registry


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Two signed pumps and their registry."""
    return make_fleet(tmp_path_factory.mktemp("ids"))


def alert(identities, device, seq, active, condition="out_of_range", component="coolant_pump", severity="critical"):
    """(topic, payload) of a sealed alert of ``device``: raised (``active``) or cleared."""
    body = {sg.A_CONDITION: condition, sg.A_COMPONENT: component, sg.A_SENSOR: "coolant_temp", sg.A_ACTIVE: active,
            sg.A_SEVERITY: severity, sg.A_TEXT: "coolant %s" % ("high" if active else "back in range"),
            sg.A_ACTION: "check the coolant pump (part CP-7)" if active else "", sg.A_VALUE: 97.5}
    signal = sg.Signal(sg.KIND_ALERT, 0 if active else 2, T0 + seq * 1000, body, device, seq)
    return sg.topic(device, sg.KIND_ALERT), identities[device].seal(signal.encode())
