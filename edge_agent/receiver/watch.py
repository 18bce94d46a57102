"""`edge-agent watch`: subscribe to devices' signals and show them decoded.

A developer's and technician's window onto the wire: every message on
``ea/v1/<device>/<kind>`` is decoded (CBOR envelope v1) and printed as a
readable table; anything undecodable is reported with the reason, never
fatal. The reference receiver (verification, dedupe, storage) builds on the
same decoding.

Everything printed that came off the wire (topics, device ids, kids, texts,
reasons) is literal text (rich.text.Text, never markup) in its short
printable form (receiver/printable.py): bounded, control characters
escaped. A message that cannot be shown is reported, and the watch carries on.
"""

import asyncio
import datetime
import logging

import aiomqtt
from rich.console import Console
from rich.table import Table
from rich.text import Text

from edge_agent.core import bundle, cose
from edge_agent.core import signals as sg
from edge_agent.receiver.printable import describe, short

log = logging.getLogger("edge_agent.receiver.watch")

_ALERT_FIELDS = [
    ("condition", sg.A_CONDITION),
    ("component", sg.A_COMPONENT),
    ("part", sg.A_PART),
    ("sensor", sg.A_SENSOR),
    ("value", sg.A_VALUE),
    ("unit", sg.A_UNIT),
    ("valid range", sg.A_LIMITS),
    ("severity", sg.A_SEVERITY),
    ("active", sg.A_ACTIVE),
    ("since", sg.A_SINCE),
    ("what", sg.A_TEXT),
    ("suggested action", sg.A_ACTION),
]
_PRIORITY_NAMES = {0: "critical", 1: "high", 2: "normal", 3: "low"}


def _when(ms):
    try:
        return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
    except (ValueError, OverflowError, OSError, TypeError):  # past the year 9999, or not a number
        return "%s (not a date)" % short(ms)


def _cell(value, limit=120):
    return Text("" if value is None else short(value, limit))


def signal_table(signal, topic, checked="not verified"):
    """A rich Table showing one decoded signal."""
    title = Text("%s #%s from %s" % (signal.kind_name, short(signal.seq), short(signal.device)))
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("topic", _cell(topic))
    table.add_row("signature", _cell(checked))
    table.add_row("time", _when(signal.time_ms))
    table.add_row("priority", "%d (%s)" % (signal.priority, _PRIORITY_NAMES.get(signal.priority, "?")))
    if signal.kind == sg.KIND_ALERT:
        for label, key in _ALERT_FIELDS:
            value = signal.body.get(key)
            if key == sg.A_SINCE and isinstance(value, int) and not isinstance(value, bool):
                value = _when(value)
            elif key == sg.A_LIMITS and isinstance(value, list) and len(value) == 2 and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and abs(x) < 1e300 for x in value):
                value = "%g .. %g" % tuple(value)
            table.add_row(label, _cell(value))
    elif signal.kind == sg.KIND_TELEMETRY:
        readings = signal.body.get(sg.T_READINGS)
        readings = readings if isinstance(readings, list) else []
        table.add_row("readings", str(len(readings)))
        for entry in readings[:8]:
            fields = entry if isinstance(entry, list) else [entry]
            table.add_row("", _cell(" ".join(short(x, 40) for x in fields[:8])))
        if len(readings) > 8:
            table.add_row("", "... %d more" % (len(readings) - 8))
    else:
        table.add_row("body", _cell(_body(signal.body), 400))
    return table


def _body(body):
    """A body map in one bounded line: {key: value, ...}, values in short form."""
    items = ["%s: %s" % (short(k, 20), short(v, 60)) for k, v in list(body.items())[:12]]
    return "{%s%s}" % (", ".join(items), ", ..." if len(body) > 12 else "")


class Watcher:
    """Prints signals as they arrive; verifies them when given a registry."""

    def __init__(self, settings, device="+", kinds=("alert",), console=None, registry=None):
        self.settings = settings
        self.registry = registry
        self.topics = ["%s/%s/%s" % (sg.TOPIC_ROOT, device, kind) for kind in kinds]
        self.console = console or Console()
        self.received = []
        self.rejected = 0

    def open(self, payload, topic):
        """(signals, verification note) for one message: a signal or a
        bundle (telemetry backlogs come as bundles)."""
        if self.registry is not None:
            signals = self.registry.open_signals(payload, topic)
            return signals, "verified (%s)" % self.registry.devices[signals[0].device].algorithm
        return bundle.decode(cose.parse(payload).payload), "NOT verified (no --registry)"

    async def run(self, count=None, timeout_s=None):
        """Print signals as they arrive; return after ``count`` signals or
        ``timeout_s`` seconds. Returns the number of signals received."""
        try:
            await asyncio.wait_for(self._loop(count), timeout_s)
        except asyncio.TimeoutError:
            pass
        return len(self.received)

    async def _loop(self, count):
        s = self.settings
        async with aiomqtt.Client(s.host, s.port, tls_context=s.tls_context, keepalive=s.keepalive_s) as client:
            for topic in self.topics:
                await client.subscribe(topic, qos=1)
            self.console.print(Text("watching %s on %s" % (", ".join(self.topics), s.describe())))
            async for message in client.messages:
                topic = str(message.topic)
                self.show(topic, bytes(message.payload))
                if count is not None and len(self.received) >= count:
                    return

    def show(self, topic, payload):
        """Open and print one message; never raises for what the message
        holds (a message that cannot be opened or shown is reported)."""
        try:
            signals, checked = self.open(payload, topic)
        except Exception as exc:  # Rejection, COSEError, SignalError, or whatever else hostile bytes cause
            self.rejected += 1
            # A ValueError's message is a reason (Rejection: "malformed: ..."); anything else is a bug worth naming.
            why = describe(exc, 300)
            if isinstance(exc, ValueError):
                why = why.split(": ", 1)[1]
            self.console.print(Text.assemble(("rejected", "red"), " message on %s: %s" % (short(topic), why)))
            return
        for signal in signals:
            self.received.append(signal)
            try:
                self.console.print(signal_table(signal, topic, checked))
            except Exception as exc:  # a value rich cannot lay out: say so, carry on
                self.console.print(Text("%s #%s from %s: cannot be shown (%s)" % (
                    signal.kind_name, short(signal.seq), short(signal.device), describe(exc, 100))))
