"""The console's read-only commands: what the device sees, as text.

Each ``cmd_*`` takes the Console (console.py), the command's arguments,
``now_ms`` and ``full`` (the session is logged in) and returns the text to
print; a problem with the arguments raises ConsoleError, whose message is
printed as "error: ...". Nothing here changes the device. Without ``full``
the answer leaves out what only technicians see (docs/console.md, "Before
login"): the broker and link details, log lines, and who forced, released
or acknowledged what. Times are shown as ages ("12 s ago") and UTC
timestamps computed by hand (MicroPython has no datetime).
"""

from edge_agent.core import component as cs
from edge_agent.core import reading as rd
from edge_agent.core import signals as sg

LANE_NAMES = {sg.PRIORITY_CRITICAL: "critical", sg.PRIORITY_HIGH: "high (alerts, audit)",
              sg.PRIORITY_NORMAL: "normal (state)", sg.PRIORITY_LOW: "low (telemetry)"}
DEFAULT_LOG_LINES = 20
MAX_LOG_LINES = 200
LOG_IN_FOR = "log in (login TOKEN) for the broker, the last errors, `log` and `config show`"
QUALITY = {rd.GOOD: "good", rd.FAULT: "fault", rd.SUBSTITUTED: "substituted"}


class ConsoleError(ValueError):
    """A command that cannot run as typed; the message says what to type."""


# -- formatting helpers -------------------------------------------------------

def duration(ms):
    """'850 ms', '12 s', '3 min 20 s', '15 min', '2 h 5 min', '3 d 4 h'."""
    if ms < 0:
        ms = 0
    if ms < 1000:
        return "%d ms" % ms
    s = ms // 1000
    if s < 60:
        return "%d s" % s
    if s < 3600:
        return _two(s // 60, "min", s % 60, "s")
    if s < 86400:
        return _two(s // 3600, "h", s % 3600 // 60, "min")
    return _two(s // 86400, "d", s % 86400 // 3600, "h")


def _two(big, big_unit, small, small_unit):
    if small:
        return "%d %s %d %s" % (big, big_unit, small, small_unit)
    return "%d %s" % (big, big_unit)


def ago(now_ms, then_ms):
    if then_ms is None:
        return "-"
    return duration(now_ms - then_ms) + " ago"


def utc(ms):
    """'2026-11-23 05:51:15Z' from ms since the Unix epoch (proleptic
    Gregorian, after Howard Hinnant's days_from_civil inverse)."""
    days, rest = divmod(ms // 1000, 86400)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return "%04d-%02d-%02d %02d:%02d:%02dZ" % (year, month, day, rest // 3600, rest % 3600 // 60, rest % 60)


def num(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value == int(value) and abs(value) < 1e15:
            return "%d" % int(value)
        return "%.4g" % value
    return str(value)


def table(header, rows):
    """Columns padded to their widest cell; the last column is not padded.
    ``header`` None: no header line."""
    rows = ([header] if header else []) + rows
    widths = []
    for row in rows:
        for i, cell in enumerate(row):
            if i >= len(widths):
                widths.append(0)
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cells.append(cell if i == len(row) - 1 else "%-*s" % (widths[i], cell))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _no_args(name, args):
    if args:
        raise ConsoleError("%s takes no arguments (got %r); see `help %s`" % (name, " ".join(args), name))


def link_state(text):
    """'online' or 'offline' from a view's link() line (which starts with
    it), without the broker and counters that follow."""
    state = text.split(":", 1)[0].strip()
    return state if state in ("online", "offline") else "-"


def _sensor(console, sensor_id):
    sensors = console.view.device.board.sensors
    if sensor_id not in sensors:
        raise ConsoleError("no sensor %r; sensors: %s" % (sensor_id, ", ".join(sorted(sensors))))
    return sensors[sensor_id]


# -- commands ----------------------------------------------------------------

def cmd_status(console, args, now, full):
    _no_args("status", args)
    view = console.view
    device = view.device
    board = device.board
    stats = device.stats
    states = {}
    for state in device.shown_states().values():  # stale: a sensor's link is lost (docs/health.md)
        states[state] = states.get(state, 0) + 1
    lines = [
        "device      %s (board %s, model %s)" % (device.device_id, board.name, board.model),
        "agent       %s" % view.agent,
        "uptime      %s (since %s)" % (duration(now - view.started_ms), utc(view.started_ms)),
        "clock       %s" % utc(now),
        "link        %s" % (view.link() if full else link_state(view.link())),
        "store       %s" % ", ".join("lane %d: %d" % (lane, records) for lane, records, _, _ in view.store_lanes()),
        "readings    %d (frames %d, bad frames %d, unknown sensor %d)" % (
            stats["readings"], stats["frames"], stats["bad_frames"], stats["unknown_sensor"]),
        "signals     %d issued (alerts %d, state changes %d)" % (stats["signals"], stats["alerts"], stats["state_changes"]),
        "components  %s" % ", ".join("%s %d" % (s, states[s]) for s in cs.STATES + (cs.STALE,) if s in states),
    ]
    if not full:
        lines.append(LOG_IN_FOR)
        return "\n".join(lines)
    errors = view.errors(3)
    lines.append("last errors" + (" none" if not errors else ""))
    for line in errors:
        lines.append("  " + line)
    return "\n".join(lines)


def cmd_readings(console, args, now, full):
    if len(args) > 1:
        raise ConsoleError("usage: readings [SENSOR]")
    device = console.view.device
    if args:
        return _sensor_detail(console, _sensor(console, args[0]), now)
    rows = []
    for sid in sorted(device.board.sensors):
        sensor = device.board.sensors[sid]
        reading = device.latest.get(sid)
        rows.append([sid, _value_text(reading, sensor), QUALITY.get(reading.quality, "?") if reading else "-",
                     ago(now, reading.time_ms if reading else None), _rule_state(device, sensor)])
    return table(["sensor", "value", "quality", "age", "rules"], rows)


def _value_text(reading, sensor):
    if reading is None:
        return "no reading yet"
    if reading.quality == rd.FAULT:
        return "fault %s" % (reading.code,)
    return "%s %s" % (num(reading.value), sensor.unit)


def _rule_state(device, sensor):
    health = device.health.components.get(sensor.component)
    if health is not None and health.state in cs.ISOLATED:
        return "not judged (%s %s)" % (sensor.component, health.state)
    active = device.health.watches[sensor.id].active_rules()
    if not active:
        return "ok"
    return "ACTIVE: " + ", ".join(rule.kind for rule in active)


def _sensor_detail(console, sensor, now):
    device = console.view.device
    watch = device.health.watches[sensor.id]
    reading = device.latest.get(sensor.id)
    lines = [
        "sensor      %s (%s on bus %s)" % (sensor.id, sensor.component or "no component", sensor.bus),
        "value       %s, %s" % (_value_text(reading, sensor), ago(now, reading.time_ms if reading else None)),
        "valid range %s to %s %s, a reading every %s" % (num(sensor.low), num(sensor.high), sensor.unit,
                                                        duration(sensor.period_ms)),
        "rule state  %s" % _rule_state(device, sensor),
        "rules",
    ]
    for rule in watch.rules:
        state = "ACTIVE since %s: %s" % (ago(now, rule.since_ms), rule.detail) if rule.active else "ok"
        lines.append("  %-13s %s" % (rule.kind, state))
    if watch.evidence:
        lines.append("recent      " + ", ".join(num(v) if v is not None else "fault" for _, _, v in watch.evidence))
    return "\n".join(lines)


def cmd_components(console, args, now, full):
    _no_args("components", args)
    device = console.view.device
    rows = []
    for cid in sorted(device.health.components):
        health = device.health.components[cid]
        since = "start" if health.since_ms is None else ago(now, health.since_ms)
        reason = console.reasons.get(cid, ("", ""))[0 if full else 1]
        if health.state == cs.QUARANTINED and health.next_probe_ms is not None:
            reason += "; probe in %s" % duration(health.next_probe_ms - now)
        flags = " (essential)" if health.component.essential else ""
        rows.append([cid + flags, device.health.shown_state(cid), since, reason or "-"])
    return table(["component", "state", "since", "reason"], rows)


def cmd_alerts(console, args, now, full):
    _no_args("alerts", args)
    if not console.alerts:
        return "no alerts since the agent started"
    rows = []
    for alert in console.alerts:
        ack = "unacked"
        if alert.acked_by:
            ack = "acked %s%s" % ("by %s " % alert.acked_by if full else "", ago(now, alert.acked_ms))
        rows.append(["#%d" % alert.seq, ago(now, alert.time_ms), alert.severity,
                     "raised" if alert.active else "cleared", ack, alert.text])
    return table(["alert", "when", "severity", "", "ack", "text"], rows) + "\nacknowledge one with `ack ALERT` (e.g. ack %d)" % console.alerts[-1].seq


def cmd_buffer(console, args, now, full):
    _no_args("buffer", args)
    rows = []
    total_records = 0
    total_bytes = 0
    for lane, records, nbytes, oldest in console.view.store_lanes():
        total_records += records
        total_bytes += nbytes
        rows.append(["%d %s" % (lane, LANE_NAMES.get(lane, "")), "%d" % records, "%d" % nbytes,
                     ago(now, oldest) if records else "-"])
    rows.append(["total", "%d" % total_records, "%d" % total_bytes, ""])
    text = table(["lane", "records", "bytes", "oldest"], rows)
    link = console.view.link()
    return text + "\nrecords wait here until the broker acknowledges them (%s)" % (link if full else link_state(link))


def cmd_log(console, args, now, full):
    count = DEFAULT_LOG_LINES
    if len(args) > 1:
        raise ConsoleError("usage: log [N]")
    if args:
        if not args[0].isdigit() or not 1 <= int(args[0]) <= MAX_LOG_LINES:
            raise ConsoleError("log N: N must be a number 1-%d, got %r" % (MAX_LOG_LINES, args[0]))
        count = int(args[0])
    lines = console.view.log_lines(count)
    return "\n".join(lines) if lines else "(the log is empty)"


def cmd_config(console, args, now, full):
    if args != ["show"]:
        raise ConsoleError("usage: config show (configuration changes arrive signed from the operator, "
                           "`edge-agent cmd send config.update`; the console only shows it)")
    board = console.view.device.board
    lines = ["board       %s (model %s) from %s" % (board.name, board.model, board.source)]
    for name, value in console.view.settings():
        lines.append("%-11s %s" % (name, value))
    lines.append("buses")
    for bid in sorted(board.buses):
        bus = board.buses[bid]
        lines.append("  %-12s %s %s baud, protocol %s" % (bid, bus.port, bus.baud, bus.protocol))
    lines.append("components")
    for cid in sorted(board.components):
        c = board.components[cid]
        extra = "essential" if c.essential else "quarantine %s, probe after %s" % (
            "+".join(c.quarantine), duration(c.probe_after_ms))
        if c.power_output:
            extra += ", power %s" % c.power_output
        lines.append("  %-12s part %s, %s" % (cid, c.part or "-", extra))
    lines.append("sensors")
    for sid in sorted(board.sensors):
        s = board.sensors[sid]
        rules = ", ".join(spec.kind for spec in s.rules) or "range only"
        lines.append("  %-12s %s to %s %s every %s; rules: %s" % (sid, num(s.low), num(s.high), s.unit,
                                                                 duration(s.period_ms), rules))
    if board.outputs:
        lines.append("outputs")
        for oid in sorted(board.outputs):
            o = board.outputs[oid]
            lines.append("  %-12s %s line %d%s" % (oid, o.chip, o.line, " (active low)" if o.active_low else ""))
    return "\n".join(lines)
