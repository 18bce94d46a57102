"""The optional compiled build of the per-reading path (`make accelerate`).

mypyc compiles the hot pure-Python modules below into CPython extension
modules in ``build/accelerated/`` (simulator/accelerate_build.py). The
``.py`` sources stay the truth: they are what MicroPython runs, what the
tests run without the build, and what the build is checked against. When
the simulator package is imported, ``enable()`` puts the compiled modules
first on the import path, but only if every one of them was built from the
sources as they are now (a SHA-256 per source in the build's manifest);
otherwise nothing compiled is used and ``status`` says why. Stale compiled
code never runs against newer sources. A module already imported before
the simulator (the CLI imports the CBOR codec) stays the plain one.

EA_ACCELERATE=0 turns it off; EA_ACCELERATED_DIR points at another build.
"""

import hashlib
import importlib.machinery
import importlib.util
import os
import sys

from . import ROOT

# The modules compiled, as imported: the sensor models, the core Device and
# its health engine, component states and rules, the readings, the CBOR
# codec, and the virtual run's reading loop. Their class defaults that are
# None carry a type hint, or mypyc would type them None.
MODULES = (
    "edge_agent.core.reading",
    "edge_agent.core.component",
    "edge_agent.core.rules",
    "edge_agent.core.rule_kinds",
    "edge_agent.core.health",
    "edge_agent.core.triage",
    "edge_agent.core.device",
    "edge_agent.core.cbor",
    "simulator.hardware.physics",
    "simulator.scenarios.reading_loop",
)
DEFAULT_DIR = os.path.join(ROOT, "build", "accelerated")
MANIFEST = "manifest.txt"  # "module sha256-of-its-source" lines, then "python EXT_SUFFIX"
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]

status = "not enabled"  # what enable() found, for the bench and `sim run` to show


def source_path(module):
    """The .py file a module is compiled from, in this checkout."""
    return os.path.join(ROOT, *module.split(".")) + ".py"


def source_digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def build_dir():
    return os.environ.get("EA_ACCELERATED_DIR") or DEFAULT_DIR


def check(directory):
    """{module: extension file} when the build in ``directory`` matches the
    sources and this Python, else a string saying why it cannot be used."""
    manifest = os.path.join(directory, MANIFEST)
    if not os.path.exists(manifest):
        return "no compiled build (make accelerate)"
    built = {}
    with open(manifest) as f:
        for line in f:
            name, _, value = line.strip().partition(" ")
            built[name] = value
    if built.get("python") != SUFFIX:
        return "built for another Python (%s, this is %s): make accelerate" % (built.get("python"), SUFFIX)
    files = {}
    for module in MODULES:
        if built.get(module) != source_digest(source_path(module)):
            return "stale: %s changed since the build: make accelerate" % source_path(module)[len(ROOT) + 1:]
        files[module] = os.path.join(directory, *module.split(".")) + SUFFIX
    # mypyc puts the code of all the modules in one shared library, which
    # each module's small extension imports by a top-level name.
    for name in os.listdir(directory):
        if name.endswith("__mypyc" + SUFFIX):
            files[name[:-len(SUFFIX)]] = os.path.join(directory, name)
    missing = [path for path in files.values() if not os.path.exists(path)]
    if missing or len(files) == len(MODULES):  # a file gone, or no shared library
        return "incomplete build (%s): make accelerate" % (", ".join(missing) or "no shared library")
    return files


class _Finder:
    """Finds the compiled modules before the path finder finds the .py."""

    def __init__(self, files):
        self.files = files

    def find_spec(self, fullname, path=None, target=None):
        file = self.files.get(fullname)
        if file is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, file)
        return importlib.util.spec_from_file_location(fullname, file, loader=loader)


def enable():
    """Use the compiled modules if the build matches; sets and returns ``status``."""
    global status
    if os.environ.get("EA_ACCELERATE") == "0":
        status = "off (EA_ACCELERATE=0)"
        return status
    if any(isinstance(finder, _Finder) for finder in sys.meta_path):
        return status
    found = check(build_dir())
    if isinstance(found, str):
        status = "plain Python: " + found
        return status
    # A module imported before the simulator (the CLI imports the CBOR
    # codec) stays the plain one; the compiled ones call it like any other.
    loaded = [module for module in MODULES if module in sys.modules]
    for module in loaded:
        del found[module]
    if len(loaded) == len(MODULES):
        status = "plain Python: all of them imported before the simulator"
        return status
    sys.meta_path.insert(0, _Finder(found))
    status = "compiled (mypyc, %s)" % build_dir()
    if loaded:
        status += ", except %s (imported before the simulator)" % ", ".join(loaded)
    return status


def compiled(module):
    """Whether an imported module is the compiled one."""
    return getattr(module, "__file__", "").endswith(SUFFIX)
