"""The receiver's fleet escalation (edge_agent/receiver/fleet.py): K of a
model's N devices with the same fault class within a window raise one
incident and queue a signed advisory per device of that model, which the
devices' own verification (core/operator.py) accepts. Signals go through
the receiver's real path: sealed by device identities, verified by the
registry, stored in SQLite and in PostgreSQL (the ``db_url`` fixture: every
test runs on both)."""

import json
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.core import audit
from edge_agent.core import operator as op
from edge_agent.core import signals as sg
from edge_agent.keys.identity import EDDSA, HMAC256, Identity
from edge_agent.keys.operators import create_operator
from edge_agent.receiver import display, fleet
from edge_agent.receiver.service import Receiver
from edge_agent.receiver.storage import open_storage
from edge_agent.receiver.registry import Registry

T0 = 1_800_000_000_000
MINUTE = 60_000


def make_fleet(tmp_path, models, hmac_every=0):
    """{device id: Identity}, Registry: devices fleet-01.. with the given models."""
    identities = {}
    lines = []
    for index, model in enumerate(models):
        device_id = "fleet-%02d" % (index + 1)
        if hmac_every and index % hmac_every == hmac_every - 1:
            identity = Identity(device_id, HMAC256, secret=os.urandom(32))
            lines.append(identity.registry_entry(model=model, include_secret=True))
        else:
            identity = Identity(device_id, EDDSA, private_key=Ed25519PrivateKey.generate())
            lines.append(identity.registry_entry(model=model))
        identities[device_id] = identity
    registry = Registry()
    registry.add_entries("\n".join(lines))
    return identities, registry


class Fleet:
    def __init__(self, tmp_path, db_url, models, k=3, fraction=0.1, window_ms=10 * MINUTE, operator=True, hmac_every=0):
        self.identities, self.registry = make_fleet(tmp_path, models, hmac_every)
        self.storage = open_storage(db_url)
        self.operator = create_operator(str(tmp_path / "operator"), "fleet-ops") if operator else None
        settings = fleet.FleetSettings(k=k, fraction=fraction, window_ms=window_ms)
        self.watch = fleet.FleetWatch(self.registry, self.storage, settings, self.operator, clock=lambda: T0)
        self.receiver = Receiver(None, self.registry, self.storage, fleet=self.watch)
        self.seq = dict((d, 0) for d in self.identities)

    def send(self, device_id, kind, time_ms, body, priority=sg.PRIORITY_HIGH, received_ms=None):
        """A signal dated ``time_ms`` by the device, arriving at
        ``received_ms`` (the same by default: clocks agree)."""
        self.seq[device_id] += 1
        signal = sg.Signal(kind, priority, time_ms, body, device_id, self.seq[device_id])
        self.storage.begin()
        result = self.receiver.handle(sg.topic(device_id, kind), self.identities[device_id].seal(signal.encode()),
                                      time_ms if received_ms is None else received_ms)
        self.storage.commit()
        assert result == "accepted", result
        return signal

    def alert(self, device_id, time_ms, condition="stuck", component="cabinet_fan", active=True, received_ms=None):
        return self.send(device_id, sg.KIND_ALERT, time_ms, {
            sg.A_CONDITION: condition, sg.A_COMPONENT: component, sg.A_SENSOR: "fan_speed", sg.A_ACTIVE: active,
            sg.A_TEXT: "fan stuck", sg.A_SEVERITY: "warning"}, received_ms=received_ms)

    def quarantined(self, device_id, time_ms, component="cabinet_fan"):
        return self.send(device_id, sg.KIND_STATE, time_ms, {
            sg.S_COMPONENT: component, sg.S_FROM: "failed", sg.S_TO: "quarantined", sg.S_EVENT: "quarantine"},
            priority=sg.PRIORITY_NORMAL)


def trusted(operator):
    from edge_agent.keys.identity import ed25519_verifier

    return {operator.kid: ed25519_verifier(bytes.fromhex(operator.public_key_hex()))}


def test_k_of_n_raises_one_incident_and_advises_every_device_of_the_model(tmp_path, db_url):
    models = ["EA-A"] * 6 + ["EA-B"] * 4
    f = Fleet(tmp_path, db_url, models, k=3)
    a_devices = [d for d, m in zip(sorted(f.identities), models) if m == "EA-A"]
    f.alert(a_devices[0], T0)
    f.alert(a_devices[1], T0 + MINUTE)
    assert f.watch.raised == []
    f.alert(a_devices[1], T0 + 2 * MINUTE)  # the same device twice counts once
    assert f.watch.raised == []
    f.alert(a_devices[2], T0 + 3 * MINUTE)
    assert len(f.watch.raised) == 1
    incident = f.watch.raised[0]
    assert (incident.model, incident.component, incident.condition) == ("EA-A", "cabinet_fan", "stuck")
    # A fourth device and the quarantines that follow join the open incident.
    f.alert(a_devices[3], T0 + 4 * MINUTE)
    for device in a_devices[:4]:
        f.quarantined(device, T0 + 5 * MINUTE)
    assert len(f.watch.raised) == 1
    rows = fleet.incidents(f.storage)
    assert len(rows) == 1
    assert rows[0][4] == 4 and rows[0][5] == 6 and rows[0][6] == 3  # devices, N, threshold
    queued = f.watch.unsent()
    assert sorted(r[1] for r in queued) == a_devices  # every EA-A device, none of EA-B
    # Ed25519 devices share one message on the model's topic; each verifies it.
    assert set(r[2] for r in queued) == {op.model_command_topic("EA-A")}
    for _, device, _, payload in queued:
        command = op.verify_command(payload, trusted(f.operator), device, "EA-A", T0 + 5 * MINUTE, 0)
        assert command.name == "advisory" and command.target == "model:EA-A"
        assert command.args["id"] == "incident-%d" % incident.id
        assert "3 of 6 EA-A devices" in command.args["text"]
        # ...and a device of the other model refuses it.
        try:
            op.verify_command(payload, trusted(f.operator), "fleet-10", "EA-B", T0, 0)
        except op.Rejection as exc:
            assert exc.reason == "wrong-model"
        else:
            raise AssertionError("a device of another model accepted the advisory")
    assert f.operator.next_counter("model:EA-A") == 2  # persisted: never reused


def test_window_slides_and_clears_do_not_count(tmp_path, db_url):
    f = Fleet(tmp_path, db_url, ["EA-A"] * 5, k=3, window_ms=10 * MINUTE)
    devices = sorted(f.identities)
    f.alert(devices[0], T0)
    f.alert(devices[1], T0 + 2 * MINUTE, active=False)  # a clear is not a report
    f.alert(devices[2], T0 + 11 * MINUTE)  # devices[0] slid out of the window
    f.alert(devices[3], T0 + 12 * MINUTE, condition="rate")  # another class
    assert f.watch.raised == []
    f.alert(devices[4], T0 + 13 * MINUTE)
    f.alert(devices[0], T0 + 14 * MINUTE)
    assert len(f.watch.raised) == 1


def test_fraction_of_the_model_sets_the_threshold(tmp_path, db_url):
    f = Fleet(tmp_path, db_url, ["EA-A"] * 10, k=2, fraction=0.5)
    devices = sorted(f.identities)
    for index, device in enumerate(devices[:4]):
        f.alert(device, T0 + index)
    assert f.watch.raised == []  # max(2, ceil(0.5 * 10)) = 5
    f.alert(devices[4], T0 + 5)
    assert len(f.watch.raised) == 1


def test_incident_closes_after_a_quiet_window_and_a_new_one_opens(tmp_path, db_url):
    f = Fleet(tmp_path, db_url, ["EA-A"] * 4, k=2, window_ms=MINUTE)
    devices = sorted(f.identities)
    f.alert(devices[0], T0)
    f.alert(devices[1], T0 + 1000)
    f.alert(devices[2], T0 + 2 * MINUTE)
    f.alert(devices[3], T0 + 2 * MINUTE + 1000)
    assert len(f.watch.raised) == 2
    counters = sorted(set(row[0] for row in f.storage.query("SELECT counter FROM fleet_advisories")))
    assert counters == [1, 2]  # each advisory a fresh counter: neither is a replay of the other


def test_hmac_devices_get_a_mac0_advisory_on_their_own_topic(tmp_path, db_url):
    f = Fleet(tmp_path, db_url, ["EA-A"] * 4, k=2, hmac_every=2)
    devices = sorted(f.identities)
    f.alert(devices[0], T0)
    f.alert(devices[1], T0 + 1)
    queued = dict((device, (topic, payload)) for _, device, topic, payload in f.watch.unsent())
    for device in (devices[1], devices[3]):  # the HMAC ones
        topic, payload = queued[device]
        assert topic == op.command_topic(device)
        secret = f.registry.devices[device].secret
        command = op.verify_command(payload, {f.operator.kid: secret}, device, "EA-A", T0, 0)
        assert command.name == "advisory"
    assert queued[devices[0]][0] == op.model_command_topic("EA-A")


def test_audit_signals_confirm_delivery_and_the_report_shows_it(tmp_path, db_url):
    f = Fleet(tmp_path, db_url, ["EA-A"] * 3, k=2)
    devices = sorted(f.identities)
    f.alert(devices[0], T0)
    f.alert(devices[1], T0 + 1)
    f.storage.begin()
    f.watch.mark_sent([(r[0], r[1]) for r in f.watch.unsent()], T0 + 2)
    f.storage.commit()
    assert f.watch.unsent() == []
    incident = f.watch.raised[0].id
    for device in devices[:2]:
        signal = audit.audit_signal(T0 + 3, "fleet-ops", "advisory", "incident-%d" % incident, None, "recorded",
                                    audit.APPLIED, "", audit.CHANNEL_DOWNLINK)
        f.send(device, sg.KIND_AUDIT, T0 + 3, signal.body)
    row = fleet.incidents(f.storage)[0]
    assert (row[8], row[9], row[10]) == (3, 3, 2)  # queued, sent, applied
    from rich.console import Console

    console = Console(record=True, width=160)
    console.print(display.report(f.storage))
    text = console.export_text()
    assert "fleet incidents" in text and "stuck on cabinet_fan" in text and "2 of 3" in text


def test_without_an_operator_the_incident_says_why_no_advisory(tmp_path, db_url):
    f = Fleet(tmp_path, db_url, ["EA-A"] * 3, k=2, operator=False)
    devices = sorted(f.identities)
    f.alert(devices[0], T0)
    f.alert(devices[1], T0 + 1)
    assert f.watch.unsent() == []
    assert "--operator" in fleet.incidents(f.storage)[0][11]


def test_a_restarted_receiver_does_not_raise_the_open_incident_again(tmp_path, db_url):
    f = Fleet(tmp_path, db_url, ["EA-A"] * 4, k=2)
    devices = sorted(f.identities)
    f.alert(devices[0], T0)
    f.alert(devices[1], T0 + 1)
    again = fleet.FleetWatch(f.registry, f.storage, f.watch.settings, f.operator, clock=lambda: T0)
    f.receiver.fleet = again
    f.alert(devices[2], T0 + 2)
    f.alert(devices[3], T0 + 3)
    assert again.raised == [] and len(fleet.incidents(f.storage)) == 1


def test_devices_without_a_model_and_commands_on_the_wire_are_ignored(tmp_path, db_url):
    f = Fleet(tmp_path, db_url, [None, None, None], k=2)
    devices = sorted(f.identities)
    for device in devices:
        f.alert(device, T0)
    assert f.watch.raised == []
    # The receiver sees device command topics under its wildcard: not signals, not rejections.
    f.storage.begin()
    assert f.receiver.handle("ea/v1/fleet-01/cmd", b"\xa0", T0) == "command"
    f.storage.commit()
    assert f.storage.rejection_counts() == {}


def test_settings_are_checked():
    for bad in (dict(k=0), dict(fraction=1.5), dict(window_ms=0)):
        try:
            fleet.FleetSettings(**bad)
        except ValueError:
            continue
        raise AssertionError("accepted %r" % bad)
    assert fleet.FleetSettings(k=3, fraction=0.1).threshold(1000) == 100
    assert fleet.FleetSettings(k=3, fraction=0.1).threshold(10) == 3


def test_a_restarted_receiver_keeps_counting_the_window(tmp_path, db_url):
    f = Fleet(tmp_path, db_url, ["EA-A"] * 4, k=3)
    devices = sorted(f.identities)
    f.alert(devices[0], T0)
    f.quarantined(devices[1], T0 + 1)  # another class on the component
    f.alert(devices[1], T0 + 2)
    again = fleet.FleetWatch(f.registry, f.storage, f.watch.settings, f.operator, clock=lambda: T0)
    f.receiver.fleet = again
    f.alert(devices[2], T0 + 3)  # the third stuck report, two of them from before the restart
    assert len(again.raised) == 1 and again.raised[0].condition == "stuck"


def test_receiver_run_refuses_bad_fleet_options(tmp_path):
    import subprocess
    import sys

    registry = tmp_path / "devices.toml"
    registry.write_text("")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for options, message in ((["--fleet-window", "soon"], "--fleet-window"),
                             (["--fleet-k", "0"], "--fleet-k must be at least 1"),
                             (["--operator", str(tmp_path / "nope")], "no operator here")):
        run = subprocess.run([sys.executable, "-m", "edge_agent", "receiver", "run", "--registry", str(registry),
                              "--db", str(tmp_path / "r.sqlite"), "--broker", "127.0.0.1:1", "--insecure", *options],
                             cwd=root, capture_output=True, text=True, timeout=60)
        assert run.returncode == 2, (options, run.stderr)
        assert message in run.stderr, (options, run.stderr)


CENTURY = 100 * 365 * 24 * 60 * MINUTE


def test_a_device_clock_a_century_ahead_does_not_switch_escalation_off(tmp_path, db_url):
    """Issue 17 item 7: one alert dated 100 years ahead slid the window past
    every real report, so K real alerts raised nothing. A report now counts
    at the earlier of its device time and its arrival, and the device is
    flagged: its clock is off."""
    f = Fleet(tmp_path, db_url, ["EA-A"] * 6, k=3)
    devices = sorted(f.identities)
    f.alert(devices[5], T0 + CENTURY, received_ms=T0)
    for index in range(5):  # the review's case: five real alerts after it
        f.alert(devices[index], T0 + (index + 1) * MINUTE)
    assert len(f.watch.raised) == 1
    assert f.watch.raised[0].condition == "stuck"
    stored_devices, first_ms, raised_ms, last_ms = f.storage.query(
        "SELECT devices, first_ms, raised_ms, last_ms FROM fleet_incidents")[0]
    assert set(json.loads(stored_devices)) == set(devices)  # joined after it was raised
    # The far-future report counts at its arrival; nothing in the incident is dated a century ahead.
    assert (first_ms, raised_ms, last_ms) == (T0, T0 + 2 * MINUTE, T0 + 5 * MINUTE)
    # The clock is flagged, for the device and as a counted anomaly.
    summary = dict((row[0], row) for row in f.storage.device_summary())
    assert summary[devices[5]][9] == CENTURY and summary[devices[5]][10] == 1
    assert summary[devices[0]][9] is None and summary[devices[0]][10] == 0
    assert f.receiver.anomalies == {"clock-ahead": 1}
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(display.report(f.storage))
    assert "100 y ahead (1 signals)" in console.export_text()


def test_a_far_future_report_stored_before_a_restart_does_not_switch_escalation_off(tmp_path, db_url):
    """The same after a restart: the window is rebuilt from the stored
    signals, where the far-future one is the newest by device time."""
    f = Fleet(tmp_path, db_url, ["EA-A"] * 6, k=3)
    devices = sorted(f.identities)
    f.alert(devices[5], T0 + CENTURY, received_ms=T0)
    again = fleet.FleetWatch(f.registry, f.storage, f.watch.settings, f.operator, clock=lambda: T0)
    f.receiver.fleet = again
    f.alert(devices[0], T0 + MINUTE)
    assert again.raised == []
    f.alert(devices[1], T0 + 2 * MINUTE)  # with the far-future report, counted at its arrival: 3 devices
    assert len(again.raised) == 1 and again.raised[0].devices == {devices[5], devices[0], devices[1]}
