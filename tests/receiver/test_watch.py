"""`edge-agent watch` opens what devices send: single signals and bundles,
verified with a registry and unverified without."""

import io

from rich.console import Console

from edge_agent.core import bundle, cose
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


def _printed(fn, *args):
    out = io.StringIO()
    console = Console(file=out, width=200)
    fn(console, *args)
    return out.getvalue()


def test_markup_and_control_characters_from_the_wire_print_literally(tmp_path):
    """Issue 17 item 8: `edge-agent watch` died (rich MarkupError) on a kid
    "[/x]". Everything from the wire is printed as literal text, control
    characters escaped, and a message is never fatal."""
    identity = create_identity(str(tmp_path / "id"), "w-1")
    registry = Registry()
    registry.add_entries(identity.registry_entry())
    signer = identity._private_key.sign
    for kid in (b"[/x]", b"[bold]", b"[/x]\x1b[2J\x07"):
        message = cose.sign1(_telemetry(1).encode(), kid, signer)
        for watcher_registry in (registry, None):

            def show(console, topic="ea/v1/[/x]/alert"):
                Watcher(None, registry=watcher_registry, console=console).show(topic, message)

            text = _printed(show)
            assert "\x1b" not in text and "\x07" not in text
            if watcher_registry is not None:
                assert "rejected message on ea/v1/[/x]/alert: unknown-device: no device '%s" % kid[:4].decode() in text
    # A verified alert whose texts carry markup and escape sequences.
    alert = sg.Signal(sg.KIND_ALERT, 1, 5, {sg.A_TEXT: "[/x] [bold]loud\x1b[2J", sg.A_CONDITION: "[/red]",
                                            sg.A_LIMITS: ["[/x]", 2], sg.A_SINCE: 2 ** 62, sg.A_ACTIVE: True},
                      "w-1", 2)
    text = _printed(lambda console: Watcher(None, registry=registry, console=console).show(
        "ea/v1/w-1/alert", identity.seal(alert.encode())))
    assert "[/x] [bold]loud\\x1b[2J" in text and "[/red]" in text and "\x1b" not in text
    assert "not a date" in text  # a 'since' past the year 9999 is shown, not fatal


def test_the_receivers_tables_print_markup_literally(tmp_path):
    from edge_agent.receiver.display import report
    from edge_agent.receiver.service import Receiver
    from edge_agent.receiver.storage import Storage

    identity = create_identity(str(tmp_path / "id"), "w-1")
    registry = Registry()
    registry.add_entries(identity.registry_entry())
    storage = Storage(str(tmp_path / "r.sqlite"))
    receiver = Receiver(None, registry, storage)
    alert = sg.Signal(sg.KIND_ALERT, 1, 5, {sg.A_TEXT: "[/x] [bold]loud\x1b[2J", sg.A_SEVERITY: "[/x]",
                                            sg.A_ACTIVE: True}, "w-1", 1)
    storage.begin()
    assert receiver.handle("ea/v1/w-1/alert", identity.seal(alert.encode()), 5) == "accepted"
    assert receiver.handle("ea/v1/[bold]/alert", cose.sign1(b"", b"[/x]", identity._private_key.sign), 5) == \
        "unknown-device"
    storage.commit()
    text = _printed(lambda console: console.print(report(storage)))
    assert "[/x] [bold]loud\\x1b[2J" in text and "\x1b" not in text
    storage.close()
