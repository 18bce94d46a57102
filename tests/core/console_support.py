"""A console on a real core Device, for tests on both interpreters.

BenchView is the smallest honest "device view" (console.py's interface): a
real Device on the health test board (which has a fan power output), a
settable clock, a log, and simulated output lines that read back what was
applied, so selftest's pulse is checked end to end. Tokens are real
COSE_Mac0 technician tokens under an HMAC operator key (MicroPython has no
Ed25519; CPython tests use real Ed25519 operator keys)."""

from health_support import health_board

from edge_agent.core import console as con
from edge_agent.core import device as dv
from edge_agent.core import frames as fr
from edge_agent.core import operator as op
from edge_agent.core import signals as sg
from edge_agent.core.outputs import SetOutput

DEVICE = "unit-7"
START = 1800000000000
OPERATOR = "ops-team"
OPERATOR_KEY = bytes(range(32))
TRUSTED = {OPERATOR.encode(): OPERATOR_KEY}
HOUR = 3600000


class BenchView:
    def __init__(self, board=None):
        self.device = dv.Device(board or health_board(), DEVICE)
        self.agent = "edge-agent test"
        self.started_ms = START
        self.clock = START
        self.dispatched = []  # every output, in order
        self.lines = {}  # output id -> on
        self.readback = True
        self.log = ["log line %d" % i for i in range(30)]
        self.console = None

    def now_ms(self):
        return self.clock

    def link(self):
        return "online: test broker"

    def store_lanes(self):
        counts = [0, 0, 0, 0]
        for item in self.dispatched:
            if isinstance(item, sg.Signal):
                counts[item.priority] += 1
        return [(lane, counts[lane], counts[lane] * 100, START if counts[lane] else None) for lane in range(4)]

    def log_lines(self, n):
        return self.log[-n:]

    def errors(self, n):
        return ["error %d" % i for i in range(n)]

    def settings(self):
        return [("telemetry", "every 10 s")]

    def dispatch(self, outputs):
        for item in outputs:
            self.dispatched.append(item)
            if isinstance(item, SetOutput):
                self.lines[item.output] = item.on
            elif isinstance(item, sg.Signal) and self.console is not None:
                self.console.observe(item)

    def output_is_on(self, output_id):
        if not self.readback:
            return None
        return self.lines.get(output_id, True)

    # -- test helpers --------------------------------------------------------

    def feed(self, sensor, value, advance_ms=500):
        """A reading through the real pipeline, outputs dispatched."""
        self.clock += advance_ms
        self.dispatch(self.device.feed("uart0", fr.encode_frame(fr.READING, sensor, value), self.clock))

    def audits(self):
        return [s for s in self.dispatched if isinstance(s, sg.Signal) and s.kind == sg.KIND_AUDIT]


def bench(trusted=TRUSTED, **kwargs):
    """(view, console) wired together, with readings for every sensor."""
    view = BenchView(**kwargs)
    console = con.Console(view, trusted)
    view.console = console
    for sensor, value in (("coolant_temp", 40), ("fan_rpm", 1200)):
        view.feed(sensor, value, 100)
    return view, console


def token(subject="alice", scopes=("read", "ack", "override", "selftest"), device=DEVICE, issued=None,
          ttl_ms=8 * HOUR, key=OPERATOR_KEY, operator=OPERATOR):
    issued = START if issued is None else issued
    data = op.mac_token(key, operator, device, subject, list(scopes), issued, issued + ttl_ms)
    return op.token_to_text(data)


class Screen:
    """A session driven as a person types: ``type`` sends text, ``screen``
    is everything written back so far as text (CR LF as LF)."""

    def __init__(self, console, name="uart0"):
        self.session = console.open_session(name)
        self.text = ""
        self._take()

    def _take(self):
        data = self.session.take_output()
        self.text += data.decode("utf-8", "replace").replace("\r\n", "\n")
        return data

    def type(self, text):
        """Type ``text`` (str or bytes); return what came back as text."""
        data = text.encode() if isinstance(text, str) else text
        self._take()  # notices that arrived meanwhile are not this answer
        start = len(self.text)
        self.session.feed(data)
        self._take()
        return self.text[start:]

    def run(self, command):
        """Type a command and Enter; return its output without the echo and
        the next prompt."""
        out = self.type(command + "\r")
        lines = out.split("\n")
        return "\n".join(lines[1:-1])
