"""The firmware's command handler (firmware/commands.py) fed by a CPython
test, on the MicroPython unix port:

    MICROPYPATH=firmware:.:.frozen micropython tests/firmware/mp_commands.py BOARD.cbor DIR SECRET_HEX

One line in, one line out, on stdin/stdout:

    reset                  a fresh Commands: new counters directory under
                           DIR, new core Device on the compiled board,
                           operator "ops" trusted with the device secret
    msg NOW_MS HEX         on_message(its topic, bytes.fromhex(HEX)) at
                           clock NOW_MS
    read NOW_MS SENSOR V   the Device ingests a reading (a float) at NOW_MS
    quit

Each answer is one line: "ok", or "rec " + the hex of a CBOR map of what
the message did: applied/refused growth, whether the counters changed,
the limiter's suppressed count, the audits it dispatched (each encoded,
as the store would), the alerts ([seq, condition, active]), the lengths
of the lines it logged and the lines logged at level error; or
"raised " + what on_message raised (it must never raise).
tests/firmware/test_firmware_commands.py states the properties
(tests/core/command_cases.py check())."""

import binascii
import sys

import config
from commands import Commands
from edge_agent.core import cbor
from edge_agent.core import device as dv
from edge_agent.core import reading as rd
from edge_agent.core import signals as sg
from identity import trusted_operators
from store_flash import FlashDir

DEVICE = "fw-props"


class Harness:
    def __init__(self, board, directory, secret):
        self.board = board
        self.directory = directory
        self.trusted = trusted_operators(["ops"], secret)
        self.runs = 0
        self.commands = None
        self.now = 0
        self.audits = []
        self.alerts = []
        self.logs = []
        self.errors = []

    def reset(self):
        self.runs += 1
        state = FlashDir("%s/run-%d" % (self.directory, self.runs))
        device = dv.Device(self.board, DEVICE)
        self.commands = Commands(device, self.trusted, state, lambda: self.now, self.dispatch, self.log)

    def dispatch(self, outputs):
        for item in outputs:
            if isinstance(item, sg.Signal):
                item.encode()  # what the store takes: it must encode
                if item.kind == sg.KIND_ALERT:
                    self.alerts.append([item.seq, item.body[sg.A_CONDITION], item.body[sg.A_ACTIVE]])
                if item.kind == sg.KIND_AUDIT:
                    body = item.body
                    self.audits.append([body[sg.U_WHO], body[sg.U_ACTION], body[sg.U_TARGET], body[sg.U_RESULT],
                                        body[sg.U_REASON]])

    def log(self, level, text):
        self.logs.append(len(text))
        if level == "error":
            self.errors.append(text[:300])

    def message(self, now, payload):
        commands = self.commands
        self.now = now
        self.audits = []
        self.alerts = []
        self.logs = []
        self.errors = []
        applied, refused, counters = commands.applied, commands.refused, commands.counters.to_map()
        commands.on_message("ea/v1/%s/cmd" % DEVICE, payload)
        return {"applied": commands.applied - applied, "refused": commands.refused - refused,
                "spent": commands.counters.to_map() != counters, "suppressed": commands.limiter.suppressed,
                "audits": self.audits, "alerts": self.alerts, "logs": self.logs, "errors": self.errors}

    def read(self, now, sensor, value):
        self.alerts = []
        device = self.commands.device
        self.dispatch(device.ingest(rd.Reading(now, sensor, value), now))
        return {"alerts": self.alerts}


def main(argv):
    board = config.load_board(argv[1]).board
    harness = Harness(board, argv[2], binascii.unhexlify(argv[3]))
    out = sys.stdout
    while True:
        line = sys.stdin.readline()
        if not line or line.strip() == "quit":
            return
        words = line.split()
        if words[0] == "reset":
            harness.reset()
            out.write("ok\n")
        elif words[0] == "read":
            record = harness.read(int(words[1]), words[2], float(words[3]))
            out.write("rec %s\n" % binascii.hexlify(cbor.dumps(record)).decode())
        else:
            try:
                record = harness.message(int(words[1]), binascii.unhexlify(words[2]) if len(words) > 2 else b"")
            except Exception as exc:  # noqa: BLE001 (the property: nothing escapes on_message)
                out.write("raised %s: %s\n" % (type(exc).__name__, exc))
            else:
                out.write("rec %s\n" % binascii.hexlify(cbor.dumps(record)).decode())
        out.flush()


main(sys.argv)
