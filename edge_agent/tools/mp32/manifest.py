# Frozen manifest of the 32-bit MicroPython stand-in's "frozen" flavour
# (edge_agent/tools/micropython32.py; docs/firmware.md "A 32-bit stand-in").
# What the firmware runs is frozen into the binary as into an ESP32
# firmware image: bytecode, constants and interned names in the
# executable's read-only data, none of it in the GC heap.
#
# MicroPython runs this file with the current directory set to the file's
# own, so the paths below are relative to it and work from any checkout.
import os

# The stock unix "standard" variant's set, asyncio included: exactly what
# the ROMFS flavour (that variant, unchanged) has frozen.
include("$(PORT_DIR)/variants/standard/manifest.py")

ROOT = "../../.."

# The portable core as the package edge_agent.core (edge_agent/__init__.py
# and edge_agent/core/*.py: the same files `edge-agent firmware build` ships).
package("edge_agent", files=["__init__.py"] + ["core/" + name for name in sorted(os.listdir(ROOT + "/edge_agent/core"))
                                              if name.endswith(".py")], base_path=ROOT)

# Every firmware module by its bare name, as on a board's /lib, the
# unix-port vehicle's own (unix_main, unix_hw, unix_flash) included: this
# binary runs the vehicle. main.py, the board's boot script, is left out.
for name in sorted(os.listdir(ROOT + "/firmware")):
    if name.endswith(".py") and name != "main.py":
        module(name, base_path=ROOT + "/firmware")
