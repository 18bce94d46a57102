"""Boot the firmware frozen into a MicroPython binary (the "frozen" flavour of
`make micropython32`, edge_agent/tools/mp32/manifest.py).

    micropython-frozen -X heapsize=N tests/firmware/frozen_boot.py unix_main-options...

As on an ESP32 whose firmware image has the code frozen in: bytecode,
constants and interned names are in the binary, not the heap. sys.path is
the frozen modules only, so nothing is imported from the checkout.
"""

import gc
import sys

sys.path[:] = [".frozen"]
gc.collect()
print("info frozen heap free at boot=%d" % gc.mem_free())

import asyncio  # noqa: E402

import unix_main  # noqa: E402

asyncio.run(unix_main.main(unix_main.parse(sys.argv[1:])))
