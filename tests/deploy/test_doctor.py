"""`edge-agent doctor` on real parts: a pty the service user can and cannot
open, a group that does not exist, certificates made with `cryptography`
(an expired one), the session's TLS mosquitto, a real identity. Access is
judged for a user other than the one running the tests (nobody), from the
files' owners and modes, as the kernel judges it."""

import os
import pwd
import shutil
import subprocess
import sys

import pytest

from edge_agent.deploy import doctor as dr
from edge_agent.keys.identity import create_identity

from conftest import BOARD, ROOT, board_model

pytestmark = pytest.mark.integration

OTHER = "nobody"
needs_other = pytest.mark.skipif(not any(p.pw_name == OTHER for p in pwd.getpwall()), reason="no user nobody")


def write_config(tmp_path, pki, broker_port, port_path, device_id, cert_key=None):
    identity = tmp_path / "id"
    if not identity.exists():
        create_identity(str(identity), device_id, "EdDSA")
    cert, key = cert_key or pki.client(device_id)
    pki.device_model(device_id, board_model(BOARD))
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nboard = "%s"\nidentity = "id"\n[agent.ports]\nuart0 = "%s"\n'
                      '[broker]\naddress = "127.0.0.1:%d"\nca = "%s"\ncert = "%s"\nkey = "%s"\n'
                      % (BOARD, port_path, broker_port, pki.ca_cert, cert, key))
    return config


def doctor(*args):
    result = subprocess.run([sys.executable, "-m", "edge_agent", "doctor", *args], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def line(output, name):
    """The verdict line of check ``name`` and its fix line ('' if none)."""
    lines = output.splitlines()
    for i, text in enumerate(lines):
        if text[6:].startswith(name + ":"):
            fix = lines[i + 1] if i + 1 < len(lines) and lines[i + 1].startswith("      fix: ") else ""
            return text, fix
    raise AssertionError("no check %r in:\n%s" % (name, output))


@needs_other
def test_a_pty_the_service_user_can_and_cannot_open(broker, pki, pty, tmp_path):
    config = write_config(tmp_path, pki, broker.port, pty.path, "doctor-1")
    os.chmod(pty.path, 0o620)  # a tty: its owner reads and writes, group tty writes
    os.chmod(config, 0o600)
    out = doctor("--config", str(config), "--user", OTHER, "--groups", "").stdout
    verdict, fix = line(out, "serial port uart0")
    assert verdict.startswith("FAIL") and "is not readable and writable by nobody" in verdict, out
    assert "usermod -aG" in fix and "SupplementaryGroups=dialout" in fix
    verdict, fix = line(out, "config")
    assert verdict.startswith("FAIL  config: %s (owner " % config) and "is not readable by nobody" in verdict, out
    assert fix == "      fix: chmod 644 %s (it holds paths, not secrets)" % config
    os.chmod(pty.path, 0o666)
    os.chmod(config, 0o644)
    out = doctor("--config", str(config), "--user", OTHER, "--groups", "").stdout
    assert line(out, "config")[0] == "ok    config: %s valid, readable by nobody" % config
    assert line(out, "serial port uart0")[0] == "ok    serial port uart0: %s readable and writable by nobody" \
        % pty.path
    # The keys are the test user's, 0600: nobody cannot read them.
    verdict, fix = line(out, "identity key")
    assert verdict.startswith("FAIL") and "not readable by nobody" in verdict and fix == "      fix: chown nobody " \
        + str(tmp_path / "id" / "device.key")


def test_as_the_user_running_it_the_port_is_opened_and_the_broker_reached(broker, pki, pty, tmp_path):
    config = write_config(tmp_path, pki, broker.port, pty.path, "doctor-2")
    me = pwd.getpwuid(os.geteuid()).pw_name
    result = doctor("--config", str(config), "--user", me, "--groups", "")
    out = result.stdout
    assert line(out, "config")[0].startswith("ok")
    assert line(out, "board file")[0].startswith("ok    board file: %s: board demo-gateway" % BOARD)
    assert line(out, "serial port uart0")[0].startswith("ok")
    assert line(out, "identity")[0] == "ok    identity: %s: device doctor-2 (EdDSA)" % (tmp_path / "id")
    assert line(out, "identity key")[0].startswith("ok    identity key: %s mode 600" % (tmp_path / "id" / "device.key"))
    assert line(out, "client key")[0].startswith("ok")
    # The session's certificates are valid for 2 days: a warning, with the fix.
    verdict, fix = line(out, "broker")
    assert verdict.startswith("warn  broker: 127.0.0.1:%d, TLSv1." % broker.port) and "expires in 1 days" in verdict
    assert "issue a new certificate" in fix
    assert line(out, "disk")[0].startswith("ok    disk: %s: " % (tmp_path / "id" / "store"))
    assert line(out, "clock")[0].split()[0] in ("ok", "FAIL")
    # The serial port gone: said, with where to look.
    pty.close()
    out = doctor("--config", str(config), "--user", me, "--groups", "").stdout
    verdict, fix = line(out, "serial port uart0")
    assert verdict == "FAIL  serial port uart0: %s does not exist" % pty.path and "/dev/serial/by-id" in fix


def test_a_missing_group_and_an_expired_certificate(broker, pki, pty, tmp_path):
    cert, key = pki.expired_client("doctor-3")
    config = write_config(tmp_path, pki, broker.port, pty.path, "doctor-3", (cert, key))
    result = doctor("--config", str(config), "--groups", "dialout,ea-no-such-group")
    assert result.returncode == 1
    out = result.stdout
    assert line(out, "group dialout")[0] == "ok    group dialout: exists"
    verdict, fix = line(out, "group ea-no-such-group")
    assert verdict.startswith("FAIL") and "status=216/GROUP" in verdict and "groupadd --system ea-no-such-group" in fix
    verdict, fix = line(out, "client certificate")
    assert verdict.startswith("FAIL  client certificate: %s (CN=doctor-3,O=edge-agent simulator) expired on " % cert)
    assert "issue a new certificate" in fix
    assert line(out, "broker CA")[0].startswith("warn")  # 2 days left
    assert out.splitlines()[-1].endswith("failed")


def test_an_unreachable_broker_and_a_world_readable_key(pki, pty, tmp_path):
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    config = write_config(tmp_path, pki, port, pty.path, "doctor-4")
    key = config.read_text().split('key = "')[1].split('"')[0]
    shutil.copy(key, tmp_path / "loose.key")
    os.chmod(tmp_path / "loose.key", 0o644)
    config.write_text(config.read_text().replace(key, str(tmp_path / "loose.key")))
    out = doctor("--config", str(config), "--groups", "").stdout
    verdict, fix = line(out, "broker")
    assert verdict.startswith("FAIL  broker: 127.0.0.1:%d: no TLS connection" % port) and "firewall" in fix
    verdict, fix = line(out, "client key")
    assert "mode 644: readable by every user" in verdict and fix == "      fix: chmod 600 %s (0640 with group " \
        "%s)" % (tmp_path / "loose.key", pwd.getpwuid(os.geteuid()).pw_name)


def test_the_clock_check_reads_the_kernels_state():
    unsynced = dr.check_clock(lambda: (dr.TIME_ERROR, dr.STA_UNSYNC, 16_000_000))
    assert unsynced.verdict == dr.FAIL and "not synchronised" in unsynced.detail and "timesyncd" in unsynced.fix
    synced = dr.check_clock(lambda: (0, 0x2001, 12_000))
    assert synced.verdict == dr.OK and synced.detail == "synchronised (max error 0.012 s)"
    state, status, _ = dr.kernel_clock_state()  # this host's, whichever it is
    assert 0 <= state <= 5 and isinstance(status, int)


def test_can_follows_owner_then_group_then_other():
    class St:
        st_uid, st_gid, st_mode = 1000, 20, 0o100620

    rw = os.R_OK | os.W_OK
    assert dr.can(dr.Account("owner", 1000, {1000}), St, rw)
    assert not dr.can(dr.Account("in-group", 1001, {20}), St, rw)  # group may write, not read
    assert dr.can(dr.Account("in-group", 1001, {20}), St, os.W_OK)
    assert not dr.can(dr.Account("other", 1002, {1002}), St, os.W_OK)
    assert dr.can(dr.Account("root", 0, {0}), St, rw)
