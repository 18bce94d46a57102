"""What each firmware module costs in heap when imported, on the MicroPython
unix port with the code in ROMFS (as on a board with a ROMFS partition).

    .venv/bin/python bench/firmware_imports.py [--image IMAGE]

Builds the host bundle (or takes ``--image``), then in one micropython
process mounts it (tests/firmware/rom_boot.py's way) and imports the
modules leaves first, printing gc.mem_alloc() after gc.collect() before and
after each: a module's own cost (its function objects, classes, interned
names and tables; its dependencies are already in). The total is what the
firmware's code takes before it makes a single object.
"""

import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from edge_agent.tools import firmware_build as fb  # noqa: E402

MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")
# Leaves first, in the order the firmware's start imports them.
MODULES = [
    "asyncio", "struct", "hashlib", "array", "collections",
    "edge_agent", "edge_agent.core.cbor", "edge_agent.core.signals", "edge_agent.core.frames",
    "edge_agent.core.reading", "edge_agent.core.outputs", "edge_agent.core.hmac_sha256", "edge_agent.core.cose",
    "edge_agent.core.modbus", "edge_agent.core.modbus_master", "edge_agent.core.nmea", "edge_agent.core.decoders",
    "edge_agent.core.board_types", "edge_agent.core.board_health", "edge_agent.core.board",
    "config",
    "edge_agent.core.component", "edge_agent.core.predict", "edge_agent.core.rules", "edge_agent.core.health",
    "edge_agent.core.triage", "edge_agent.core.device",
    "edge_agent.core.store_format", "edge_agent.core.store_recovery", "edge_agent.core.store",
    "edge_agent.core.store_seq", "edge_agent.core.evictions", "edge_agent.core.bundle",
    "mqtt_packets", "mqtt_client", "pins", "uart_source", "uplink", "store_flash", "identity", "app",
    "edge_agent.core.audit", "edge_agent.core.operator", "edge_agent.core.command_flow", "commands",
    "edge_agent.core.console_line", "edge_agent.core.console_show", "edge_agent.core.console", "console_port",
]

PROBE = """
import gc, sys, vfs
with open(%r, "rb") as f:
    rom = f.read()
vfs.mount(vfs.VfsRom(rom), "/rom")
sys.path[:] = ["/rom/lib", ".frozen"]
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

# What the unix-port firmware's start really imports (unix_main's imports,
# a line-only board: no commands, no console), in a fresh process.
START = """
import gc, sys, vfs
with open(%r, "rb") as f:
    rom = f.read()
vfs.mount(vfs.VfsRom(rom), "/rom")
sys.path[:] = ["/rom/lib", ".frozen"]
gc.collect()
before = gc.mem_alloc()
import unix_main
gc.collect()
print("start %%d" %% (gc.mem_alloc() - before))
print("loaded " + " ".join(sorted(name for name in sys.modules if name != "__main__")))
"""


def measure(image):
    out = subprocess.run([MICROPYTHON, "-X", "heapsize=4m", "-c", PROBE % (image, MODULES)], capture_output=True,
                         text=True, cwd=ROOT)
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


def measure_start(image):
    out = subprocess.run([MICROPYTHON, "-X", "heapsize=4m", "-c", START % image], capture_output=True, text=True,
                         cwd=ROOT)
    if out.returncode:
        raise SystemExit(out.stdout + out.stderr)
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    return int(lines["start"]), lines["loaded"].split()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", help="a bundle.romfs built with host modules (default: build one)")
    args = parser.parse_args()
    image = args.image
    if image is None:
        work = tempfile.mkdtemp(prefix="fw-imports-")
        fb.build(work, host=True)
        image = os.path.join(work, "bundle.romfs")
    costs, total = measure(image)
    for name, cost in costs:
        print("%-36s %7.1f KiB" % (name, cost / 1024))
    print("%-36s %7.1f KiB" % ("total (every module)", total / 1024))
    start, loaded = measure_start(image)
    print("firmware start (unix_main's imports, %d modules): %.1f KiB" % (len(loaded), start / 1024))
    print("  " + " ".join(loaded))


if __name__ == "__main__":
    main()
