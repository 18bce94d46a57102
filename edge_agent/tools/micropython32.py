"""Build a 32-bit MicroPython unix port from source: the ESP32-sized stand-in
for the firmware's memory tests (issue 19; docs/firmware.md "A 32-bit
stand-in").

    python -m edge_agent.tools.micropython32 --src DIR [--lib DIR] [--out DIR]
        [--flavour frozen|romfs|both] [--no-tls] [--jobs N]
    make micropython32 MICROPYTHON_SRC=DIR [MICROPYTHON_LIB=DIR]

--src is a micropython/micropython tree; --lib a micropython/micropython-lib
tree (default: SRC/lib/micropython-lib, where MicroPython's build looks).
TLS needs Mbed TLS at SRC/lib/mbedtls (MicroPython's submodule, at the
commit MicroPython pins); without it, or with --no-tls, the build has no
ssl/tls module and the 32-bit runs are plaintext. The host needs a 32-bit C
library (Debian's gcc-multilib).

Two flavours, each a unix-port "standard" variant compiled with -m32 (no
ffi, no btree: their 32-bit libraries are not needed):

    frozen  edge_agent/tools/mp32/manifest.py: asyncio, the core and
            every firmware module frozen into the binary, as into an ESP32
            firmware image
    romfs   the stock variant, unchanged: the firmware's code comes from the
            bundle.romfs that `edge-agent firmware build` makes, mounted
            with vfs.VfsRom (tests/firmware/rom_boot.py)

Everything is written under --out (default build/micropython32, ignored by
git): OUT/micropython-frozen, OUT/micropython-romfs, the build trees and
mpy-cross, and OUT/build-info.txt (the sources' commits, the options, the
binaries' sizes). Nothing is written into the source trees. Compiles run
under `nice -n 19` (the machines are shared).

This module is a build tool of the project like firmware_build.py, which
is why it lives in edge_agent/tools/ (not in firmware/, which ships to
boards); the tests find the binaries with ``binary(flavour)``.
"""

import argparse
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(ROOT, "build", "micropython32")
MANIFEST = os.path.join(ROOT, "edge_agent", "tools", "mp32", "manifest.py")
FLAVOURS = ("frozen", "romfs")
# The unix port's options of the 32-bit build: -m32 throughout; no ffi and
# no btree (they would need libffi and Berkeley DB for i386, and a board has
# neither); the port's standard variant otherwise.
COMMON_MAKE = ["VARIANT=standard", "CFLAGS_EXTRA=-m32", "LDFLAGS_EXTRA=-m32", "MICROPY_PY_FFI=0",
               "MICROPY_PY_BTREE=0"]


class BuildError(Exception):
    """A missing source tree or tool; the message says what to do."""


def out_dir():
    """Where the binaries are: EA_MICROPYTHON32_DIR, else build/micropython32."""
    return os.environ.get("EA_MICROPYTHON32_DIR") or DEFAULT_OUT


def binary(flavour, directory=None):
    """The path of the 32-bit binary of ``flavour`` ('frozen' or 'romfs'),
    or None when it has not been built."""
    path = os.path.join(directory or out_dir(), "micropython-" + flavour)
    return path if os.access(path, os.X_OK) else None


def has_tls(path):
    """True when the binary at ``path`` was built with TLS (an ssl module)."""
    result = subprocess.run([path, "-c", "import tls"], capture_output=True)
    return result.returncode == 0


def check_sources(src, lib):
    for needed in ("py/mpconfig.h", "ports/unix/Makefile", "mpy-cross/Makefile", "extmod/asyncio/manifest.py"):
        if not os.path.exists(os.path.join(src, needed)):
            raise BuildError("%s: not a micropython/micropython tree (no %s); give --src (MICROPYTHON_SRC=) the "
                             "checkout's root" % (src, needed))
    if not os.path.isdir(os.path.join(lib, "python-stdlib")):
        raise BuildError("%s: not a micropython/micropython-lib tree (no python-stdlib/); give --lib "
                         "(MICROPYTHON_LIB=), or put micropython-lib at %s" % (lib, os.path.join(src, "lib",
                                                                                                  "micropython-lib")))


def mbedtls_present(src):
    return os.path.exists(os.path.join(src, "lib", "mbedtls", "library", "ssl_tls.c"))


def check_m32():
    """A 32-bit C library and the compiler to link against it."""
    probe = subprocess.run(["gcc", "-m32", "-print-file-name=libc.so"], capture_output=True, text=True)
    if probe.returncode or probe.stdout.strip() == "libc.so":
        raise BuildError("gcc cannot build 32-bit programs here: apt-get install gcc-multilib")


def git_describe(path):
    result = subprocess.run(["git", "-C", path, "describe", "--tags", "--always", "--dirty"], capture_output=True,
                            text=True)
    return result.stdout.strip() if result.returncode == 0 else "(not a git checkout)"


def make(args, jobs, log):
    command = ["nice", "-n", "19", "make", "-j%d" % jobs] + args
    print("==> " + " ".join(command), flush=True)
    with open(log, "a") as f:
        f.write("$ %s\n" % " ".join(command))
        f.flush()
        result = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT)
    if result.returncode:
        with open(log) as f:
            tail = f.read()[-4000:]
        raise BuildError("make failed (exit %d); the end of %s:\n%s" % (result.returncode, log, tail))


def build(src, lib=None, out=None, flavours=FLAVOURS, tls=True, jobs=2):
    """Build the 32-bit binaries of ``flavours`` into ``out``; return
    {flavour: path}."""
    src = os.path.abspath(src)
    lib = os.path.abspath(lib or os.path.join(src, "lib", "micropython-lib"))
    out = os.path.abspath(out or out_dir())
    check_sources(src, lib)
    check_m32()
    if tls and not mbedtls_present(src):
        print("note: no Mbed TLS at %s/lib/mbedtls: building without TLS (plaintext MQTT only)" % src)
        tls = False
    os.makedirs(out, exist_ok=True)
    log = os.path.join(out, "build.log")
    mpy_cross_dir = os.path.join(out, "mpy-cross")
    make(["-C", os.path.join(src, "mpy-cross"), "BUILD=" + mpy_cross_dir], jobs, log)
    mpy_cross = os.path.join(mpy_cross_dir, "mpy-cross")
    options = COMMON_MAKE + ["MICROPY_PY_SSL=%d" % int(tls), "MPY_LIB_DIR=" + lib, "MICROPY_MPYCROSS=" + mpy_cross,
                             "MICROPY_MPYCROSS_DEPENDENCY=" + mpy_cross]
    built = {}
    for flavour in flavours:
        build_dir = os.path.join(out, "build-" + flavour)
        args = ["-C", os.path.join(src, "ports", "unix"), "BUILD=" + build_dir] + options
        if flavour == "frozen":
            args.append("FROZEN_MANIFEST=" + MANIFEST)
        make(args, jobs, log)
        target = os.path.join(out, "micropython-" + flavour)
        shutil.copy2(os.path.join(build_dir, "micropython"), target)
        built[flavour] = target
    info = ["micropython %s (%s)" % (git_describe(src), src), "micropython-lib %s (%s)" % (git_describe(lib), lib),
            "mbedtls %s" % (git_describe(os.path.join(src, "lib", "mbedtls")) if tls else "(none: no TLS)"),
            "make options: " + " ".join(COMMON_MAKE + ["MICROPY_PY_SSL=%d" % int(tls)]),
            "frozen manifest: edge_agent/tools/mp32/manifest.py"]
    for flavour, path in sorted(built.items()):
        info.append("%s: %s (%d bytes, %s)" % (flavour, path, os.path.getsize(path), _file_kind(path)))
    with open(os.path.join(out, "build-info.txt"), "w") as f:
        f.write("\n".join(info) + "\n")
    print("\n".join(info))
    return built


def _file_kind(path):
    result = subprocess.run(["file", "-b", path], capture_output=True, text=True)
    return result.stdout.split(",")[0].strip() if result.returncode == 0 else "?"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", required=True, help="a micropython/micropython checkout")
    parser.add_argument("--lib", help="a micropython/micropython-lib checkout (default SRC/lib/micropython-lib)")
    parser.add_argument("--out", help="output directory (default build/micropython32)")
    parser.add_argument("--flavour", choices=FLAVOURS + ("both",), default="both")
    parser.add_argument("--no-tls", action="store_true", help="build without TLS even when Mbed TLS is there")
    parser.add_argument("--jobs", type=int, default=2, help="make -j (default 2: the machines are shared)")
    args = parser.parse_args(argv)
    flavours = FLAVOURS if args.flavour == "both" else (args.flavour,)
    try:
        build(args.src, args.lib, args.out, flavours, tls=not args.no_tls, jobs=args.jobs)
    except BuildError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
