"""Boot the firmware from a ROMFS image on the MicroPython unix port.

    micropython -X heapsize=N tests/firmware/rom_boot.py IMAGE unix_main-options...

On an ESP32 (MicroPython >= 1.25) a ROMFS partition is memory-mapped
flash: .mpy bytecode runs in place and costs no heap. The unix port has
vfs.VfsRom but no flash, so the image is read into the heap first, as its
very first allocation (one block, no fragmentation), and the heap limit of
a test is the budget plus the image's size. Everything after that is the
firmware's own use, which gc.mem_free() reports.
"""

import gc
import sys
import vfs

with open(sys.argv[1], "rb") as f:
    rom = f.read()
vfs.mount(vfs.VfsRom(rom), "/rom")
sys.path[:] = ["/rom/lib", ".frozen"]
gc.collect()
print("info rom image=%d heap free after mount=%d" % (len(rom), gc.mem_free()))

import asyncio  # noqa: E402

import unix_main  # noqa: E402

asyncio.run(unix_main.main(unix_main.parse(sys.argv[2:])))
