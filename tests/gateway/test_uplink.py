"""The uplink on a real broker: alerts preempt a draining backlog, the store
absorbs an outage, and TLS refuses what it should."""

import asyncio
import contextlib
import os
import re
import signal
import time

import aiomqtt
import pytest

from edge_agent.core import bundle, cose, frames as fr
from edge_agent.core import signals as sg
from edge_agent.core.store import Store
from edge_agent.keys.identity import create_identity
from edge_agent.gateway.store_posix import PosixDir
from edge_agent.broker import BrokerSettings, client_context
from edge_agent.gateway.uplink import Pacer, Uplink, group_for_publish
from simulator.fixtures.broker import free_port

from conftest import ROOT

pytestmark = pytest.mark.integration


def _telemetry(device, seq):
    return sg.Signal(sg.KIND_TELEMETRY, sg.PRIORITY_LOW, seq, {sg.T_READINGS: [[seq, "t", 1.0, 0]]}, device, seq)


def _alert(device, seq):
    return sg.Signal(sg.KIND_ALERT, sg.PRIORITY_CRITICAL, seq, {sg.A_CONDITION: "out_of_range"}, device, seq)


def _settings(pki, broker, name):
    cert, key = pki.client(name)
    return BrokerSettings("127.0.0.1", broker.port, client_context(pki.ca_cert, cert, key))


def test_alert_preempts_a_draining_backlog(pki, broker, tmp_path):
    backlog = 30000
    identity = create_identity(str(tmp_path / "id"), "preempt-1")
    store = Store(PosixDir(str(tmp_path / "store")), 0)
    for seq in range(1, backlog + 1):
        store.append(sg.PRIORITY_LOW, _telemetry("preempt-1", seq).encode(), 0)
    arrivals = []  # (kind, first seq, time)

    async def scenario():
        uplink = Uplink(_settings(pki, broker, "preempt-up"), identity, store)
        async with aiomqtt.Client("127.0.0.1", broker.port,
                                  tls_context=_settings(pki, broker, "preempt-sub").tls_context) as sub:
            await sub.subscribe("ea/v1/preempt-1/+", qos=1)
            task = asyncio.create_task(uplink.run())
            try:
                await asyncio.wait_for(uplink.online.wait(), 10)
                while uplink.published < 2000:  # the drain is under way
                    await asyncio.sleep(0.001)
                appended_at = time.monotonic()
                store.append(sg.PRIORITY_CRITICAL, _alert("preempt-1", backlog + 1).encode(), 0, urgent=True)
                uplink.notify()
                received = 0
                async for message in sub.messages:
                    if str(message.topic).endswith("/status"):
                        continue
                    signals = bundle.decode(cose.parse(bytes(message.payload)).payload)
                    arrivals.append((signals[0].kind, signals[0].seq, time.monotonic()))
                    received += len(signals)
                    if received >= backlog + 1 - 10:
                        break
                return appended_at
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    appended_at = asyncio.run(scenario())
    store.close()
    kinds = [kind for kind, _, _ in arrivals]
    alert_index = kinds.index(sg.KIND_ALERT)
    latency_ms = (arrivals[alert_index][2] - appended_at) * 1000
    telemetry_after = sum(1 for kind in kinds[alert_index:] if kind == sg.KIND_TELEMETRY)
    print("alert arrived %.1f ms after append, ahead of %d telemetry messages still queued" % (latency_ms, telemetry_after))
    assert telemetry_after > 0, "the alert waited for the whole backlog"
    assert latency_ms < 1000


def test_an_hour_offline_in_a_small_store_keeps_every_alert(pki, start_agent, subscribe, pty, tmp_path, registry):
    """Broker down while an hour of the demo board's readings arrives (4
    sensors at 1-2 Hz: 21,600 frames) into a store bounded far below that.
    The agent keeps reading, the store evicts telemetry and keeps every
    alert, and when the broker appears the alerts, the remaining telemetry
    and an evictions signal accounting for every missing seq arrive."""
    from simulator.fixtures.broker import Mosquitto

    port = free_port()
    agent = start_agent(port, "outage-1", pty.path, extra=(
        "--telemetry-interval-ms", "100", "--store-max-bytes", "160000", "--store-segment-bytes", "16384"))
    agent.child.wait_for("; retrying in", 20)
    frames = 21600
    excursions = 0
    for i in range(frames):
        value = 40 + i % 5
        if i % 2000 == 1000:
            value = 500  # out of range: one alert raised, one cleared
            excursions += 1
        pty.write(fr.encode_frame(fr.READING, "coolant_temp", value))
    agent.child.wait_for("store full", 60)
    time.sleep(0.5)
    # Every urgent alert the agent issued (triage may fold repeats into one
    # with a count, so count what it logged, not excursions).
    issued = {int(n) for n in re.findall(r"alert #(\d+):", agent.child.text())}
    assert issued

    def arrived(ms):
        seqs = {s.seq for t, p in ms if t.endswith("/alert") for s in registry.open_signals(p, t)}
        return issued <= seqs and any(t.endswith("/evictions") for t, _ in ms)

    os.killpg(agent.child.process.pid, signal.SIGSTOP)
    try:
        with Mosquitto(str(tmp_path / "late"), pki=pki, port=port):
            messages = subscribe(port, ["ea/v1/outage-1/+"], arrived, timeout_s=60,
                                 action=lambda: os.killpg(agent.child.process.pid, signal.SIGCONT))
    finally:
        os.killpg(agent.child.process.pid, signal.SIGCONT)
    signals = [s for t, p in messages if not t.endswith("/status") for s in registry.open_signals(p, t)]
    evictions = [s for s in signals if s.kind == sg.KIND_EVICTIONS]
    evicted_lanes = {lane for s in evictions for lane, records, _ in s.body[sg.V_LANES] if records}
    print("%d frames offline, %d alerts issued and all delivered; evicted from lanes %s: %s"
          % (frames, len(issued), sorted(evicted_lanes), [s.body[sg.V_LANES] for s in evictions]))
    assert evicted_lanes == {sg.PRIORITY_LOW}, "only telemetry gave way"
    assert agent.child.process.poll() is None  # and the agent kept running throughout


def test_tls_with_the_wrong_ca_is_refused_clearly(pki, broker, tmp_path, pty):
    from simulator.fixtures.pki import DevPKI
    from simulator.fixtures.processes import Child, edge_agent_argv

    stranger = DevPKI(str(tmp_path / "other-ca"))
    identity_dir = str(tmp_path / "tls-id")
    create_identity(identity_dir, "tls-1")
    cert, key = pki.client("tls-1")
    child = Child("agent", edge_agent_argv(
        "run", "--board", os.path.join(ROOT, "boards", "demo-gateway.toml"), "--port", pty.path,
        "--identity", identity_dir, "--broker", "127.0.0.1:%d" % broker.port,
        "--ca", stranger.ca_cert, "--cert", cert, "--key", key, "--gpio", "simulated"), relay=False)
    try:
        line = child.wait_for("unreachable", 20)
    finally:
        child.stop()
    assert "CERTIFICATE_VERIFY_FAILED" in line or "certificate verify failed" in line


def test_grouping_keeps_alerts_alone_and_bundles_the_rest():
    records = [_telemetry("g", 1).encode(), _telemetry("g", 2).encode(), _alert("g", 3).encode(),
               _telemetry("g", 4).encode()]
    assert [(k, len(r)) for k, r in group_for_publish(records, urgent=False)] == [
        (sg.KIND_TELEMETRY, 2), (sg.KIND_ALERT, 1), (sg.KIND_TELEMETRY, 1)]
    assert [len(r) for _, r in group_for_publish(records[:2], urgent=True)] == [1, 1]


def test_pacer_limits_the_rate():
    clock = [0.0]
    slept = []

    async def virtual_sleep(seconds):
        slept.append(seconds)
        clock[0] += seconds

    async def run():
        pacer = Pacer(1000, clock=lambda: clock[0], sleep=virtual_sleep)
        for _ in range(10):
            await pacer.spend(500)

    asyncio.run(run())
    # 5,000 signals at 1,000/s take ~5 s of sleeping in all.
    assert 4.4 < sum(slept) < 5.1, sum(slept)
