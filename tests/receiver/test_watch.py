"""`edge-agent watch` opens what devices send: single signals and bundles,
verified with a registry and unverified without."""

import io

from rich.console import Console

from edge_agent.core import bundle
from edge_agent.core import signals as sg
from edge_agent.keys.identity import create_identity
from edge_agent.receiver.registry import Registry
from edge_agent.receiver.watch import Watcher, signal_table


def _telemetry(seq):
    return sg.Signal(sg.KIND_TELEMETRY, sg.PRIORITY_LOW, seq, {sg.T_READINGS: [[seq, "t", 1.5, 0]]}, "w-1", seq)


def test_bundles_and_single_signals_open_with_and_without_registry(tmp_path):
    identity = create_identity(str(tmp_path / "id"), "w-1")
    registry = Registry()
    registry.add_entries(identity.registry_entry())
    topic = "ea/v1/w-1/telemetry"
    single = identity.seal(_telemetry(1).encode())
    bundled = identity.seal(bundle.encode([_telemetry(s).encode() for s in (2, 3, 4)]))
    for watcher, note in ((Watcher(None, registry=registry), "verified (EdDSA)"),
                          (Watcher(None), "NOT verified (no --registry)")):
        signals, checked = watcher.open(bundled, topic)
        assert [s.seq for s in signals] == [2, 3, 4] and checked == note
        signals, _ = watcher.open(single, topic)
        assert [s.seq for s in signals] == [1]
    out = io.StringIO()
    Console(file=out, width=100).print(signal_table(signals[0], topic, "verified (EdDSA)"))
    assert "telemetry #1 from w-1" in out.getvalue() and "readings" in out.getvalue()
