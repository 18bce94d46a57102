"""What each firmware module costs in heap when imported, on the MicroPython
unix port with the code in ROMFS (as on a board with a ROMFS partition).

    .venv/bin/python bench/firmware_imports.py [--image IMAGE] [--micropython BIN] [--frozen]

Builds the host bundle (or takes ``--image``), then in one micropython
process mounts it (tests/firmware/rom_boot.py's way) and imports the
modules leaves first, printing gc.mem_alloc() after gc.collect() before and
after each: a module's own cost (its function objects, classes, interned
names and tables; its dependencies are already in). The total is what the
firmware's code takes before it makes a single object.

--micropython runs another binary, e.g. the 32-bit stand-in
(`make micropython32`: build/micropython32/micropython-romfs); --frozen
imports the modules frozen into that binary (micropython-frozen) instead
of a ROMFS image. --m32 FLAVOUR is short for the 32-bit binary of that
flavour (frozen implies --frozen); the bench says so and exits 0 when it
has not been built.
"""

import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from edge_agent.tools import firmware_build as fb  # noqa: E402
from edge_agent.tools import micropython32 as mp32  # noqa: E402

MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")
# Leaves first, in the order the firmware's start imports them.
MODULES = [
    "asyncio", "struct", "hashlib", "array", "collections",
    "edge_agent", "edge_agent.core.cbor", "edge_agent.core.signals", "edge_agent.core.frames",
    "edge_agent.core.reading", "edge_agent.core.outputs", "edge_agent.core.hmac_sha256", "edge_agent.core.cose",
    "edge_agent.core.modbus", "edge_agent.core.modbus_master", "edge_agent.core.nmea", "edge_agent.core.decoders",
    "edge_agent.core.board_types", "edge_agent.core.board_health", "edge_agent.core.board",
    "config",
    "edge_agent.core.component", "edge_agent.core.predict", "edge_agent.core.rules", "edge_agent.core.rule_kinds",
    "edge_agent.core.health",
    "edge_agent.core.triage", "edge_agent.core.device",
    "edge_agent.core.store_format", "edge_agent.core.store_recovery", "edge_agent.core.store",
    "edge_agent.core.store_seq", "edge_agent.core.evictions", "edge_agent.core.bundle",
    "mqtt_packets", "mqtt_client", "pins", "uart_source", "uplink", "store_flash", "identity", "app",
    "edge_agent.core.audit", "edge_agent.core.operator", "edge_agent.core.command_flow", "commands",
    "edge_agent.core.console_edit", "edge_agent.core.console_line", "edge_agent.core.console_words",
    "edge_agent.core.console_show", "edge_agent.core.console_login", "edge_agent.core.console", "console_port",
]

# How the code is found: a ROMFS image mounted at /rom (rom_boot.py's way),
# or the modules frozen into the binary.
ROM_SETUP = """
import gc, sys, vfs
with open(%r, "rb") as f:
    rom = f.read()
vfs.mount(vfs.VfsRom(rom), "/rom")
sys.path[:] = ["/rom/lib", ".frozen"]
"""
FROZEN_SETUP = """
import gc, sys
sys.path[:] = [".frozen"]
"""

PROBE = """
def used():
    gc.collect()
    return gc.mem_alloc()
start = used()
for name in %r:
    before = used()
    try:
        __import__(name)
    except ImportError as exc:
        print("skip %%s %%s" %% (name, exc))
        continue
    print("mod %%s %%d" %% (name, used() - before))
print("total %%d" %% (used() - start))
"""

# What the unix-port firmware's start really imports (unix_main's imports and
# those it makes once the board is loaded, a line-only board: no commands,
# no console), in a fresh process.
START = """
gc.collect()
before = gc.mem_alloc()
import unix_main, app, identity, store_flash, unix_hw
gc.collect()
print("start %d" % (gc.mem_alloc() - before))
print("loaded " + " ".join(sorted(name for name in sys.modules if name != "__main__")))
"""


def setup_code(image):
    return FROZEN_SETUP if image is None else ROM_SETUP % image


def measure(image, micropython=MICROPYTHON):
    """``image`` None: the modules frozen into ``micropython``."""
    out = subprocess.run([micropython, "-X", "heapsize=4m", "-c", setup_code(image) + PROBE % (MODULES,)],
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise SystemExit(out.stdout + out.stderr)
    costs, total = [], 0
    for line in out.stdout.splitlines():
        parts = line.split()
        if parts[0] == "mod":
            costs.append((parts[1], int(parts[2])))
        elif parts[0] == "total":
            total = int(parts[1])
    return costs, total


def measure_start(image, micropython=MICROPYTHON):
    out = subprocess.run([micropython, "-X", "heapsize=4m", "-c", setup_code(image) + START], capture_output=True,
                         text=True, cwd=ROOT)
    if out.returncode:
        raise SystemExit(out.stdout + out.stderr)
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    return int(lines["start"]), lines["loaded"].split()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", help="a bundle.romfs built with host modules (default: build one)")
    parser.add_argument("--micropython", help="the MicroPython binary (default: the virtualenv's unix port)")
    parser.add_argument("--frozen", action="store_true", help="the modules frozen into --micropython, no image")
    parser.add_argument("--m32", choices=mp32.FLAVOURS, help="the 32-bit stand-in of this flavour (make micropython32)")
    args = parser.parse_args()
    micropython = args.micropython or MICROPYTHON
    if args.m32:
        micropython = mp32.binary(args.m32)
        if micropython is None:
            print("skipped: no 32-bit MicroPython in %s (make micropython32 MICROPYTHON_SRC=DIR)" % mp32.out_dir())
            return
        args.frozen = args.m32 == "frozen"
    print("%s, code %s" % (micropython, "frozen into the binary" if args.frozen else "in ROMFS"))
    image = args.image
    if args.frozen:
        image = None
    elif image is None:
        work = tempfile.mkdtemp(prefix="fw-imports-")
        fb.build(work, host=True)
        image = os.path.join(work, "bundle.romfs")
    costs, total = measure(image, micropython)
    for name, cost in costs:
        print("%-36s %7.1f KiB" % (name, cost / 1024))
    print("%-36s %7.1f KiB" % ("total (every module)", total / 1024))
    start, loaded = measure_start(image, micropython)
    print("firmware start (unix_main and what it imports once the board is loaded, %d modules): %.1f KiB"
          % (len(loaded), start / 1024))
    print("  " + " ".join(loaded))


if __name__ == "__main__":
    main()
