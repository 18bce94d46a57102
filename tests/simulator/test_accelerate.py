"""`make accelerate` (simulator/accelerate.py): the per-reading path
compiled with mypyc gives the same signal logs as the plain modules, and a
build that no longer matches its sources is never used.

The build is real (mypyc and the C compiler, about 30 s of CPU), into a
temporary directory; the runs are real scenario runs in child processes."""

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from simulator import ROOT
from simulator import accelerate

# Scenarios whose alerts go through most rules and states: a power cut,
# a stuck fan (quarantine, power pin), a held step (the CUSUM shift rule),
# a fault code, an overheat threshold.
SCENARIOS = ["power_cut", "stuck_fan", "step_held_30d", "sensor_fault_code", "coolant_overheat"]

CHILD = """
import sys
import xml.etree.ElementTree as ET
from simulator import accelerate
from simulator.scenarios import spec as sc
from simulator.scenarios import virtual as run
from edge_agent.core import device, rules, health, cbor
from simulator.hardware import physics
print(accelerate.status)
print(all(accelerate.compiled(m) for m in (device, rules, health, cbor, physics)))
for name in sys.argv[1:]:
    result = run.run(sc.load(sc.LIBRARY + "/" + name + ".toml"), record=False)
    print(name, result.passed, result.digest)
"""


def _child(env_extra):
    env = dict(os.environ, PYTHONHASHSEED="0", **env_extra)
    done = subprocess.run([sys.executable, "-c", CHILD] + SCENARIOS, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("no C compiler: mypyc cannot build (apt-get install gcc)")
    directory = str(tmp_path_factory.mktemp("accelerated"))
    from simulator import accelerate_build
    accelerate_build.build(directory)
    return directory


def test_compiled_runs_give_the_plain_runs_signal_logs(built):
    plain = _child({"EA_ACCELERATE": "0"})
    compiled = _child({"EA_ACCELERATED_DIR": built})
    assert plain[:2] == ["off (EA_ACCELERATE=0)", "False"]
    assert compiled[0].startswith("compiled (mypyc") and compiled[1] == "True", compiled[:2]
    assert all(line.split()[1] == "True" for line in plain[2:]), plain
    assert compiled[2:] == plain[2:]
    assert len(plain[2:]) == len(SCENARIOS)


def test_a_stale_build_is_not_used(built, tmp_path):
    assert isinstance(accelerate.check(built), dict)
    stale = str(tmp_path / "stale")
    shutil.copytree(built, stale)
    manifest = os.path.join(stale, accelerate.MANIFEST)
    with open(manifest) as f:
        lines = f.read().splitlines()
    # As if rules.py had been edited after the build.
    lines = [line if not line.startswith("edge_agent.core.rules ") else "edge_agent.core.rules " + "0" * 64
             for line in lines]
    with open(manifest, "w") as f:
        f.write("\n".join(lines) + "\n")
    assert accelerate.check(stale) == "stale: edge_agent/core/rules.py changed since the build: make accelerate"
    out = _child({"EA_ACCELERATED_DIR": stale})
    assert out[:2] == ["plain Python: stale: edge_agent/core/rules.py changed since the build: make accelerate",
                       "False"]


def test_no_build_or_another_python_means_plain_modules(tmp_path):
    assert accelerate.check(str(tmp_path)) == "no compiled build (make accelerate)"
    with open(str(tmp_path / accelerate.MANIFEST), "w") as f:
        f.write("python .cpython-39-x86_64-linux-gnu.so\n")
    assert accelerate.check(str(tmp_path)).startswith("built for another Python (.cpython-39")


PYTEST_CHILD = """
import sys
import xml.etree.ElementTree as ET
import simulator  # first: the compiled modules go on the path before anything imports the core
from simulator import accelerate
import pytest
rc = pytest.main(["-q", "-x", "-p", "no:cacheprovider"] + sys.argv[1:])
from edge_agent.core import cbor, component, device, health, rules
from simulator.scenarios import reading_loop
assert all(accelerate.compiled(m) for m in (cbor, component, device, health, rules, reading_loop)), accelerate.status
sys.exit(rc)
"""


def test_the_core_and_model_tests_pass_against_the_compiled_modules(built):
    # Type hints are checked at run time in compiled code: a hint narrower
    # than what a caller passes would fail here, not in the plain runs.
    tests = ["tests/core/test_cbor.py", "tests/test_cbor_fast_paths.py", "tests/core/test_health_rules.py",
             "tests/core/test_health_engine.py", "tests/core/test_device.py", "tests/core/test_level_shift.py",
             "tests/core/test_link_loss.py", "tests/simulator/test_physics_draws.py",
             "tests/simulator/test_reading_loop.py"]
    env = dict(os.environ, EA_ACCELERATED_DIR=built)
    done = subprocess.run([sys.executable, "-c", PYTEST_CHILD] + tests, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout


def _cli_digest(name, env_extra, tmp_path):
    """`edge-agent sim run` as a user runs it: the CLI imports the CBOR
    codec before the simulator, so that one stays plain (status says so)."""
    junit = str(tmp_path / ("%s-%d.xml" % (name, len(env_extra.get("EA_ACCELERATED_DIR", "")))))
    env = dict(os.environ, PYTHONHASHSEED="0", **env_extra)
    done = subprocess.run([sys.executable, "-m", "edge_agent", "sim", "run", os.path.join("simulator", "scenarios",
                          name + ".toml"), "--quiet", "--junit", junit], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    props = ET.parse(junit).getroot().find("testsuite").find("properties")
    return dict((p.get("name"), p.get("value")) for p in props)["signal_log_sha256"]


@pytest.mark.parametrize("name", SCENARIOS[:3])
def test_sim_run_from_the_cli_gives_the_same_signal_log(built, name, tmp_path):
    assert _cli_digest(name, {"EA_ACCELERATED_DIR": built}, tmp_path) == _cli_digest(
        name, {"EA_ACCELERATE": "0"}, tmp_path)
