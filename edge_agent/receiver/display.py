"""What the receiver shows people: a live table on a terminal, summary lines
in a log, and the report of `edge-agent receiver report`.

Every string that came from a device or the broker (device ids, alert
texts, conditions, components, rejection reasons) goes into a table as a
``rich.text.Text`` of its short printable form (cell()): rich never reads
it as markup (a kid "[/x]" would raise MarkupError, "[bold]" would style),
and control characters and escape sequences are shown escaped, never sent
to the terminal."""

import asyncio
import datetime

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from edge_agent.receiver.printable import duration, short


def cell(value, limit=80):
    """A table cell for an untrusted value: literal text, escaped, bounded."""
    return Text("" if value is None else short(value, limit))


def _when(ms):
    if not ms:
        return ""
    try:
        return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%H:%M:%S")
    except (ValueError, OverflowError, OSError):  # beyond the year 9999: a device clock far off
        return "?"


def clock_note(ahead_ms, anomalies):
    """The devices table's clock column: empty for a clock within the
    tolerated skew, else how far ahead and how many signals."""
    if not anomalies:
        return ""
    return "%s ahead (%d signals)" % (duration(ahead_ms or 0), anomalies)


def devices_table(storage, with_gaps=False):
    table = Table(title="devices", title_justify="left")
    for column in ("device", "online", "signals", "last seq", "missing", "duplicates", "active alerts", "last seen",
                   "clock"):
        table.add_column(column, justify="right" if column not in ("device", "online", "clock") else "left")
    if with_gaps:
        # "last seq 47,105, signals 2,681, missing 0" explains itself: the
        # rest are numbers the device skipped at its restarts.
        table.add_column("boots", justify="right")
        table.add_column("skipped at restarts")
        table.add_column("missing seq ranges")
    for (device, count, max_seq, missing, duplicates, active, last_seen, _, presence, ahead_ms,
         anomalies) in storage.device_summary():
        row = [cell(device), presence, str(count), str(max_seq), str(missing), str(duplicates), str(active),
               _when(last_seen), clock_note(ahead_ms, anomalies)]
        if with_gaps:
            births = storage.births(device)
            lost, skipped = storage.missing(device, births)
            row += [str(len(births)), _ranges(skipped), _ranges(lost)]
        table.add_row(*row)
    return table


def _ranges(ranges, shown=10):
    """'4-5, 19' for [(4, 5), (19, 19)]: the first ``shown``, then how many more."""
    text = ", ".join("%d-%d" % r if r[0] != r[1] else str(r[0]) for r in ranges[:shown])
    if len(ranges) > shown:
        text += " ... (%d more)" % (len(ranges) - shown)
    return text


def alerts_table(storage, limit=8):
    table = Table(title="recent alerts", title_justify="left")
    for column in ("time", "device", "seq", "severity", "state", "what"):
        table.add_column(column)
    for device, seq, time_ms, severity, active, text in storage.recent_alerts(limit):
        table.add_row(_when(time_ms), cell(device), str(seq), cell(severity, 20), "raised" if active else "cleared",
                      cell(text, 120))
    return table


def rejections_table(receiver):
    table = Table(title="rejected", title_justify="left")
    table.add_column("reason")
    table.add_column("count", justify="right")
    for reason, count in sorted(receiver.storage.rejection_counts().items()):
        table.add_row(cell(reason), str(count))
    return table


def fleet_table(storage):
    """Fleet incidents and their advisories (receiver/fleet.py), or None."""
    from edge_agent.receiver.fleet import incidents

    rows = incidents(storage)
    if not rows:
        return None
    table = Table(title="fleet incidents", title_justify="left")
    for column in ("id", "raised", "model", "fault class", "devices", "threshold", "advisories sent", "applied"):
        table.add_column(column, justify="right" if column in ("id", "devices", "threshold") else "left")
    for (incident, model, component, condition, devices, fleet_size, threshold, raised_ms, queued, sent, applied,
         note) in rows:
        advisories = note or "%d of %d" % (sent, queued)
        table.add_row(str(incident), _when(raised_ms), cell(model), cell("%s on %s" % (condition, component)),
                      "%d of %d" % (devices, fleet_size), str(threshold), cell(advisories),
                      "" if note else "%d of %d" % (applied or 0, queued))
    return table


def repair_table(storage):
    """Gap repair (receiver/repair.py): per device, the ranges repaired,
    still pending (asked how many times) and lost for good (the device's
    reason), after a line saying whether repair is on and the totals; None
    if it never ran."""
    from edge_agent.receiver import repair

    state = repair.status(storage)
    rows = repair.ranges(storage)
    if state is None and not rows:
        return None
    totals = repair.counts(storage)
    # A line of its own: a table's title wraps at the table's width.
    summary = Text("gap repair: %s; %d seqs repaired, %d pending, %d lost for good; %d requests (%d answered, "
                   "%d refused)" % (state or "off", totals["repaired"], totals["pending"], totals["lost"],
                                    totals["requests"], totals["requests_answered"], totals["requests_refused"]))
    if not rows:
        return summary
    table = Table(title="gap repair by device", title_justify="left")
    for column in ("device", "repaired", "pending", "lost for good"):
        table.add_column(column)
    for device, lists in sorted(rows.items()):
        pending = ["%s (asked %d)" % (_ranges([r[:2]]), r[2]) if r[2] else "%s (settling)" % _ranges([r[:2]])
                   for r in lists[repair.PENDING]]
        lost = ["%s (%s)" % (_ranges([r[:2]]), r[2]) for r in lists[repair.LOST]]
        table.add_row(cell(device), _ranges(lists[repair.REPAIRED]), _listed(pending), cell(_listed(lost), 400))
    return Group(summary, table)


def _listed(items, shown=10):
    text = ", ".join(items[:shown])
    if len(items) > shown:
        text += " ... (%d more)" % (len(items) - shown)
    return text


def report(storage):
    """The full picture from the database alone (no broker needed)."""
    tables = [devices_table(storage, with_gaps=True), alerts_table(storage, 20)]
    incidents = fleet_table(storage)
    if incidents is not None:
        tables.append(incidents)
    repairs = repair_table(storage)
    if repairs is not None:
        tables.append(repairs)
    counts = storage.rejection_counts()
    if counts:
        table = Table(title="rejected", title_justify="left")
        table.add_column("reason")
        table.add_column("count", justify="right")
        for reason, count in sorted(counts.items()):
            table.add_row(cell(reason), str(count))
        tables.append(table)
    return Group(*tables)


async def show_live(receiver, console, interval_s=1.0):
    with Live(console=console, refresh_per_second=4) as live:
        while True:
            live.update(Group(devices_table(receiver.storage), alerts_table(receiver.storage),
                              rejections_table(receiver)))
            await asyncio.sleep(interval_s)


async def log_summaries(receiver, console, interval_s=10.0):
    while True:
        await asyncio.sleep(interval_s)
        rejected = ", ".join("%s %d" % (reason, n) for reason, n in sorted(receiver.rejected.items())) or "none"
        anomalies = ", ".join("%s %d" % (kind, n) for kind, n in sorted(receiver.anomalies.items())) or "none"
        console.print(Text("receiver: %d accepted, %d duplicates dropped, rejected: %s; anomalies: %s; "
                           "%d retained statuses of unregistered devices ignored"
                           % (receiver.accepted, receiver.duplicates, rejected, anomalies, receiver.ignored)))
