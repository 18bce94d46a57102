"""How live mode applies a scenario's faults, for real (run.py runs
the timeline; docs/simulator.md has the table).

    sensor faults        the physics (the same models as the virtual clock)
    garbage, bit_flips,
    truncated            bytes on the pty (board.py)
    bus_disconnect       the pty closed, a new one behind the same path later;
                         on a Modbus bus the cable cut (modbus.py)
    broker_down          mosquitto stopped (SIGTERM), later started again
    partition            the proxy blackholes both directions
    packet_loss          the proxy's loss model (retransmission stalls, resets)
    latency, throttle    the proxy delays / paces
    connection_reset     the proxy sends RSTs
    power_cut            SIGKILL to the agent's process group; restarted after off
    disk_full            the store's own small tmpfs filled to the last byte
    force, release       not applied (no operator channel here): noted

Each action is printed with its scenario time; whatever could not be
applied becomes a note in the result.
"""

import os

from ...faults import small_fs
from ...fixtures.broker import Mosquitto


def timeline(spec):
    """(offset ms, order, action, fault): ends before starts on ties."""
    events = []
    for f in spec.faults:
        start, end = f.at_ms, f.end_ms
        if f.kind in ("broker_down", "partition", "packet_loss", "latency", "throttle", "bit_flips", "truncated",
                      "bus_disconnect", "disk_full"):
            events.append((start, 1, f.kind, f))
            if end is not None:
                events.append((end, 0, "end_" + f.kind, f))
        elif f.kind == "power_cut":
            events.append((start, 1, "power_cut", f))
            events.append((start + f.args["off_ms"], 2, "power_on", f))
        elif f.kind in ("garbage", "connection_reset", "force", "release"):
            events.append((start, 3, f.kind, f))
    events.sort(key=lambda e: (e[0], e[1], e[3].key))
    return events


def apply(live, action, fault):
    """Apply one timeline action of ``fault`` to the LiveRun ``live``."""
    a = fault.args
    what = {
        "broker_down": "mosquitto stopped (SIGTERM)",
        "end_broker_down": "mosquitto started again",
        "partition": "partition: the proxy blackholes both ways (nothing closed)",
        "end_partition": "partition healed",
        "packet_loss": "packet loss %g%% (retransmission stalls)" % (100 * a.get("rate", 0)),
        "end_packet_loss": "packet loss over",
        "latency": "latency +%d ms each way" % a.get("ms", 0),
        "end_latency": "latency over",
        "throttle": "bandwidth %d bytes/s" % a.get("bytes_per_s", 0),
        "end_throttle": "bandwidth unlimited",
        "connection_reset": "connections reset (RST)",
        "power_cut": "power cut: SIGKILL to the agent",
        "power_on": "power back: the agent starts",
        "disk_full": "disk full: the store's filesystem filled",
        "end_disk_full": "disk space freed",
        "garbage": "%d bytes of line noise on %s" % (a.get("bytes", 0), a.get("bus")),
        "bit_flips": "bit flips on %s (%g%% of frames)" % (a.get("bus"), 100 * a.get("rate", 0)),
        "end_bit_flips": "bit flips over",
        "truncated": "truncated frames on %s (%g%% of frames)" % (a.get("bus"), 100 * a.get("rate", 0)),
        "end_truncated": "truncated frames over",
        "bus_disconnect": "bus %s disconnected (the cable pulled)" % a.get("bus"),
        "end_bus_disconnect": "bus %s reconnected" % a.get("bus"),
    }.get(action)
    proxy = live.proxy
    if action == "broker_down":
        live.window("link", True)
        live.broker.stop()
    elif action == "end_broker_down":
        live.broker = Mosquitto(live.broker.directory, pki=live.pki, port=live.broker.port,
                                persistent=True, acl=live.broker.acl).start()
        live.window("link", False)
    elif action == "partition":
        live.window("link", True)
        proxy.partition(True)
    elif action == "end_partition":
        proxy.partition(False)
        live.window("link", False)
    elif action == "packet_loss":
        proxy.set_loss(a["rate"])
    elif action == "end_packet_loss":
        proxy.set_loss(0.0)
    elif action == "latency":
        proxy.set_latency(a["ms"])
    elif action == "end_latency":
        proxy.set_latency(0)
    elif action == "throttle":
        proxy.set_bandwidth(a["bytes_per_s"])
    elif action == "end_throttle":
        proxy.set_bandwidth(None)
    elif action == "connection_reset":
        what += ": %d" % proxy.reset()
    elif action == "power_cut":
        if live.agent.process.poll() is None:
            live.window("power", True)
            live.agent_lines()
            live.agent.kill()
            live.power_lost()
    elif action == "power_on":
        if "power" in live.windows:
            live.window("power", False)
            live.start_agent()
    elif action == "disk_full":
        if live.mounted is None:
            what += ": not applied (no tmpfs)"
        else:
            live.window("disk", True)
            what += " (%s)" % fill_disk(live)
            live.result.notes.append("%s at %s" % (what, live.t_now()))
    elif action == "end_disk_full":
        if live.filler is not None:
            os.unlink(live.filler)
            live.filler = None
            live.window("disk", False)
    elif action == "garbage":
        live.live_board.garbage(a["bus"], a["bytes"])
    elif action in ("bit_flips", "end_bit_flips"):
        live.live_board.set_bit_flips(a["bus"], a["rate"] if action == "bit_flips" else 0.0)
    elif action in ("truncated", "end_truncated"):
        live.live_board.set_truncation(a["bus"], a["rate"] if action == "truncated" else 0.0)
    elif action in ("bus_disconnect", "end_bus_disconnect"):
        bus = a["bus"]
        simulated = live.modbus if bus in live.modbus.links else (
            live.live_board if bus in live.live_board.ports else None)
        if simulated is None:
            what += ": not applied (bus %s is not simulated live)" % bus
            live.result.notes.append("%s at %s" % (what, live.t_now()))
        elif action == "bus_disconnect":
            simulated.disconnect(bus)
        else:
            simulated.reconnect(bus)
    elif action in ("force", "release"):
        note = "%s %s at %s not applied: live mode has no operator channel to the agent" % (
            action, a["component"], live.t_now())
        live.result.notes.append(note)
        what = note
    live.say("  %s  %s" % (live.t_now(), what))


def fill_disk(live):
    """Fill the store's filesystem to the last byte with a filler file."""
    live.filler = os.path.join(live.mounted, "filler")
    written, free = small_fs.fill(live.filler)
    return "%d KiB filler, %d bytes free" % (written >> 10, free)
