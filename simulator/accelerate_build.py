"""`make accelerate`: compile simulator/accelerate.py's MODULES with mypyc
into build/accelerated/ (or the directory given), with the manifest
accelerate.check() compares the sources against. CPython only; the .py
sources are unchanged and stay what MicroPython and the plain runs use.

Run: .venv/bin/python -m simulator.accelerate_build [DIR]
"""

import os
import shutil
import subprocess
import sys
import tempfile

from . import ROOT
from . import accelerate

# Run in a scratch directory: setuptools would otherwise read the
# checkout's pyproject.toml and try to build the edge-agent package itself.
SETUP = """
import sys
from setuptools import setup
from mypyc.build import mypycify
out, temp, sources = sys.argv[1], sys.argv[2], sys.argv[3:]
setup(name="edge_agent_accelerated", ext_modules=mypycify(sources, opt_level="3", target_dir=temp),
      script_args=["build_ext", "--build-lib", out, "--build-temp", temp])
"""


def build(directory):
    """Compile into ``directory`` (replaced); returns the manifest's text."""
    sources = [accelerate.source_path(module) for module in accelerate.MODULES]
    # The digests are taken before compiling: a source edited meanwhile
    # makes the build stale, never silently current.
    lines = ["%s %s" % (module, accelerate.source_digest(path)) for module, path in zip(accelerate.MODULES, sources)]
    lines.append("python %s" % accelerate.SUFFIX)
    scratch = tempfile.mkdtemp(prefix="ea-accelerate-")
    try:
        out = os.path.join(scratch, "out")
        # mypyc names modules by the packages above each file: relative
        # paths from the checkout, with the checkout on mypy's path.
        env = dict(os.environ, MYPYPATH=ROOT, PYTHONPATH=ROOT)
        command = [sys.executable, "-c", SETUP, out, os.path.join(scratch, "temp")] + sources
        done = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError("mypyc failed:\n" + (done.stdout + done.stderr)[-4000:])
        with open(os.path.join(out, accelerate.MANIFEST), "w") as f:
            f.write("\n".join(lines) + "\n")
        if os.path.exists(directory):
            shutil.rmtree(directory)
        shutil.copytree(out, directory)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return "\n".join(lines)


def main(argv):
    directory = argv[0] if argv else accelerate.build_dir()
    build(directory)
    found = accelerate.check(directory)
    if isinstance(found, str):
        print("built, but not usable: " + found)
        return 1
    print("compiled %d modules with mypyc into %s" % (len(accelerate.MODULES), directory))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
