"""The shipped systemd unit: `edge-agent service install` writes it (and
the agent.toml skeleton, kept once edited) and systemd's own checker,
`systemd-analyze verify`, finds nothing to say about it."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed (apt-get install systemd)")


def run_cli(*args):
    result = subprocess.run([sys.executable, "-m", "edge_agent", *args], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def verify(path):
    return subprocess.run([ANALYZE, "verify", str(path)], capture_output=True, text=True, timeout=60)


def directives(text):
    found = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            found[key] = value
    return found


def test_install_writes_the_unit_and_keeps_an_edited_config(tmp_path):
    result = run_cli("service", "install", "--root", str(tmp_path))
    assert result.returncode == 0, result.stderr
    unit = tmp_path / "etc/systemd/system/edge-agent.service"
    config = tmp_path / "etc/edge-agent/agent.toml"
    assert "systemctl daemon-reload && systemctl enable --now edge-agent" in result.stdout
    unit_dirs = directives(unit.read_text())
    script = os.path.join(os.path.dirname(sys.executable), "edge-agent")
    assert unit_dirs["ExecStart"] == script + " run --config /etc/edge-agent/agent.toml"
    for key, value in (("Type", "notify"), ("Restart", "on-failure"), ("StateDirectory", "edge-agent"),
                       ("SupplementaryGroups", "dialout gpio"), ("ProtectSystem", "strict"),
                       ("NoNewPrivileges", "yes"), ("User", "edge-agent"), ("NotifyAccess", "main")):
        assert unit_dirs[key] == value, key
    assert int(unit_dirs["WatchdogSec"]) > 0
    assert oct(config.stat().st_mode & 0o777) == "0o644"  # paths, no secrets: the service user reads it
    config.write_text(config.read_text() + "# edited\n")
    result = run_cli("service", "install", "--root", str(tmp_path), "--exec", "/usr/local/bin/edge-agent")
    assert "agent.toml: kept" in result.stdout
    assert config.read_text().endswith("# edited\n")
    assert directives(unit.read_text())["ExecStart"].startswith("/usr/local/bin/edge-agent run ")


@needs_analyze
def test_systemd_analyze_verify_passes_the_unit(tmp_path):
    run_cli("service", "install", "--root", str(tmp_path))
    unit = tmp_path / "etc/systemd/system/edge-agent.service"
    result = verify(unit)
    assert result.returncode == 0 and result.stderr == "", result.stderr


@needs_analyze
def test_systemd_analyze_would_catch_a_mistake(tmp_path):
    """The check above can fail: a misspelt directive, a bad value and a
    missing executable are each reported."""
    text = run_cli("service", "install", "--print-unit").stdout
    for wrong, words in ((("ProtectSystem=strict", "ProtectSystm=strict"), "Unknown key"),
                         (("Type=notify", "Type=notifyy"), "Failed to parse service type"),
                         (("ExecStart=" + os.path.dirname(sys.executable), "ExecStart=/nowhere"), "not executable")):
        unit = tmp_path / "edge-agent.service"
        unit.write_text(text.replace(*wrong))
        result = verify(unit)
        assert words in result.stderr, (wrong, result.stderr)
