"""Signed-command verification: commands/s, ours against pycose.

    .venv/bin/python bench/bench_downlink.py [--seconds S]

One operator command (quarantine.release, ~120 bytes on the wire) verified
again and again:

- ours: edge_agent.core.operator.verify_command (COSE parse, trusted-kid
  lookup, signature or MAC, payload decode and every check: type, name and
  args, target, expiry, counter), with cryptography's Ed25519 for Sign1 and
  the core's pure-Python HMAC for Mac0;
- pycose: CoseMessage.decode + verify_signature / verify_tag + cbor2.loads
  of the payload (signature and decode only: no command checks at all).

Then ours for Mac0 on the MicroPython unix port (the ESP32 stand-in; pycose
does not run there). Prints commands/s and ours/pycose ratios.
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cbor2  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from pycose.keys import OKPKey, SymmetricKey  # noqa: E402
from pycose.keys.curves import Ed25519  # noqa: E402
from pycose.keys.keyparam import OKPKpCurve, OKPKpX  # noqa: E402
from pycose.messages import CoseMessage  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from edge_agent.core import cose  # noqa: E402
from edge_agent.core import operator as op  # noqa: E402
from edge_agent.keys.identity import ed25519_verifier  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOW = 1_800_000_000_000
SECRET = bytes(range(32))
ARGS = {"component": "cabinet_fan", "note": "fan replaced"}

MICROPYTHON_SCRIPT = r'''
import time
from edge_agent.core import operator as op
SECRET = bytes(range(32))
NOW = 1800000000000
message = op.mac_command(SECRET, "ops-team", "unit-1", "quarantine.release",
                         {"component": "cabinet_fan", "note": "fan replaced"}, 5, NOW, NOW + 600000)
trusted = {b"ops-team": SECRET}
n = 0
start = time.ticks_ms()
while time.ticks_diff(time.ticks_ms(), start) < %d:
    op.verify_command(message, trusted, "unit-1", "EA-1", NOW, 4)
    n += 1
print(n * 1000 / time.ticks_diff(time.ticks_ms(), start))
'''


def rate(fn, seconds):
    fn()  # warm up
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(50):
            fn()
        count += 50
    return count / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="per contender (default 1.5)")
    seconds = parser.parse_args().seconds

    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    payload = op.command_payload("unit-1", "quarantine.release", ARGS, 5, NOW, NOW + 600_000)
    sign1 = cose.sign1(payload, b"ops-team", key.sign)
    mac0 = op.mac_command(SECRET, "ops-team", "unit-1", "quarantine.release", ARGS, 5, NOW, NOW + 600_000)
    ours_sign1 = {b"ops-team": ed25519_verifier(public)}
    ours_mac0 = {b"ops-team": SECRET}
    pycose_public = OKPKey.from_dict({OKPKpCurve: Ed25519, OKPKpX: public})
    pycose_secret = SymmetricKey(k=SECRET)

    def pycose_sign1():
        message = CoseMessage.decode(sign1)
        message.key = pycose_public
        assert message.verify_signature()
        cbor2.loads(message.payload)

    def pycose_mac0():
        message = CoseMessage.decode(mac0)
        message.key = pycose_secret
        assert message.verify_tag()
        cbor2.loads(message.payload)

    results = [
        ("Sign1 Ed25519", rate(lambda: op.verify_command(sign1, ours_sign1, "unit-1", "EA-1", NOW, 4), seconds),
         rate(pycose_sign1, seconds)),
        ("Mac0 HMAC-SHA256", rate(lambda: op.verify_command(mac0, ours_mac0, "unit-1", "EA-1", NOW, 4), seconds),
         rate(pycose_mac0, seconds)),
    ]
    table = Table(title="verifying one signed command (%d bytes Sign1, %d bytes Mac0), CPython %s"
                  % (len(sign1), len(mac0), sys.version.split()[0]))
    for column in ("envelope", "ours (full checks) /s", "pycose (verify + decode) /s", "ours / pycose"):
        table.add_column(column, justify="right")
    for name, ours, peer in results:
        table.add_row(name, "{:,.0f}".format(ours), "{:,.0f}".format(peer), "%.2fx" % (ours / peer))
    Console().print(table)

    micropython = os.path.join(ROOT, ".venv", "bin", "micropython")
    if os.path.exists(micropython):
        out = subprocess.run([micropython, "-c", MICROPYTHON_SCRIPT % int(seconds * 1000)], cwd=ROOT,
                             env=dict(os.environ, MICROPYPATH=".:.frozen"), capture_output=True, text=True,
                             timeout=60)
        figure = out.stdout.strip() or out.stderr.strip().splitlines()[-1]
        print("MicroPython unix port, ours, Mac0 command verified with every check: %s /s" % figure)


if __name__ == "__main__":
    main()
