"""The firmware's build steps (edge-agent firmware ...) and its config and
flash-store adapters under the real MicroPython unix port."""

import os
import stat
import subprocess
import sys

import cbor2
import pytest
from fw_support import FIRMWARE_PATH, MICROPYTHON

from edge_agent.tools import firmware_build as fb
from edge_agent.atomic_file import atomic_write
from edge_agent.boardfile import load_board
from edge_agent.core.board import board_from_dict
from edge_agent.keys.identity import create_identity
from simulator.fixtures.processes import ROOT

BOARD = os.path.join(ROOT, "boards", "demo-gateway.toml")


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "edge_agent", "firmware", *args], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, **(env or {})))


def micropython(*args):
    return subprocess.run([MICROPYTHON, *args], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, MICROPYPATH=FIRMWARE_PATH))


def test_compile_board_is_the_validated_board_as_cbor(tmp_path):
    out = tmp_path / "board.cbor"
    result = cli("compile-board", BOARD, "--uart", "uart0=2:17:16", "-o", str(out))
    assert result.returncode == 0, result.stderr
    data = cbor2.loads(out.read_bytes())
    assert data["format"] == 1 and data["uarts"] == {"uart0": [2, 17, 16]}
    compiled = board_from_dict(data["board"], "compiled")
    original = load_board(BOARD)
    assert sorted(compiled.sensors) == sorted(original.sensors)
    assert compiled.outputs["fan_power"].line == original.outputs["fan_power"].line


@pytest.mark.parametrize("args, message", [
    (["boards/missing.toml"], "file not found"),
    ([BOARD, "--uart", "uart7=1"], "no bus 'uart7'"),
    ([BOARD, "--uart", "uart0=two"], "write BUS=UART_ID"),
    ([BOARD, "--input", "door=4"], "no sensor 'door'"),
    ([BOARD, "--console-idle", "60"], "--console-idle 60: give seconds, more than 0 and less than a week, with --console"),
    ([BOARD, "--console", "0", "--console-idle", "0"], "--console-idle 0: give seconds"),
])
def test_compile_board_refuses_bad_input_clearly(tmp_path, args, message):
    result = cli("compile-board", *args, "-o", str(tmp_path / "x.cbor"))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.cbor").exists()


def test_compile_board_lists_every_problem(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(open(BOARD).read().replace('unit = "rpm"', 'unit = 5').replace("baud = 115200", "baud = 7"))
    result = cli("compile-board", str(bad), "-o", str(tmp_path / "x.cbor"))
    assert result.returncode == 2 and "2 problems" in result.stderr, result.stderr


def test_provision_writes_the_secret_privately_and_never_prints_it(pki, tmp_path):
    identity = create_identity(str(tmp_path / "id"), "fw-build-1", "HMAC256")
    cert, key = pki.client("fw-build-1")
    out = tmp_path / "device.cbor"
    result = cli("provision", "--identity", str(tmp_path / "id"), "--broker", "10.0.0.2:8883", "--ca", pki.ca_cert,
                 "--cert", cert, "--key", key, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    secret = identity._secret
    assert secret.hex() not in result.stdout + result.stderr
    data = cbor2.loads(out.read_bytes())
    assert data["secret"] == secret and data["broker"] == {"host": "10.0.0.2", "port": 8883, "keepalive_s": 30}
    assert data["tls"]["ca"][:1] == b"\x30"  # DER: a SEQUENCE, not PEM text
    ed = create_identity(str(tmp_path / "ed"), "fw-build-2")
    refused = cli("provision", "--identity", ed.directory, "--broker", "h:1", "-o", str(tmp_path / "y.cbor"))
    assert refused.returncode == 2 and "keys init --hmac" in refused.stderr
    half = cli("provision", "--identity", str(tmp_path / "id"), "--broker", "h:1", "--ca", pki.ca_cert,
               "-o", str(tmp_path / "z.cbor"))
    assert half.returncode == 2 and "all three" in half.stderr


@pytest.fixture
def umask_022():
    """The usual umask: without an explicit mode, new files would be 0644
    and directories 0755 (readable by every local user)."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_provision_without_tls_needs_insecure(pki, tmp_path, umask_022):
    identity = create_identity(str(tmp_path / "id"), "fw-plain-1", "HMAC256")
    out = tmp_path / "device.cbor"
    refused = cli("provision", "--identity", identity.directory, "--broker", "10.0.0.2:1883", "-o", str(out))
    assert refused.returncode == 2, refused.stderr
    for option in ("--ca", "--cert", "--key", "--insecure"):
        assert option in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr and not out.exists()
    # --insecure: plaintext, chosen and recorded in the settings; still 0600
    out.write_bytes(b"old")  # a previous file of the default mode is replaced, not reused
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o644
    plain = cli("provision", "--identity", identity.directory, "--broker", "10.0.0.2:1883", "--insecure",
                "-o", str(out))
    assert plain.returncode == 0, plain.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert "plaintext MQTT to 10.0.0.2:1883" in plain.stderr
    data = cbor2.loads(out.read_bytes())
    assert data["insecure"] is True and "tls" not in data
    assert identity._secret.hex() not in plain.stdout + plain.stderr
    # --insecure with TLS files is a contradiction, as for `edge-agent run`
    cert, key = pki.client("fw-plain-1")
    both = cli("provision", "--identity", identity.directory, "--broker", "h:1", "--insecure", "--ca", pki.ca_cert,
               "--cert", cert, "--key", key, "-o", str(tmp_path / "both.cbor"))
    assert both.returncode == 2 and "--insecure turns TLS off" in both.stderr, both.stderr
    # with TLS, nothing about plaintext is recorded
    tls = cli("provision", "--identity", identity.directory, "--broker", "h:8883", "--ca", pki.ca_cert,
              "--cert", cert, "--key", key, "-o", str(tmp_path / "tls.cbor"))
    assert tls.returncode == 0, tls.stderr
    assert "insecure" not in cbor2.loads((tmp_path / "tls.cbor").read_bytes()) and "plaintext" not in tls.stderr
    assert stat.S_IMODE(os.stat(tmp_path / "tls.cbor").st_mode) == 0o600


def test_the_device_warns_at_boot_without_tls(pki, tmp_path):
    """config.warn_plaintext under MicroPython: one line for --insecure
    settings, one naming the fix for settings without TLS made before
    --insecure existed, nothing with TLS."""
    create_identity(str(tmp_path / "id"), "fw-plain-2", "HMAC256")
    cert, key = pki.client("fw-plain-2")
    paths = []
    for name, settings in (
            ("insecure", fb.provision(str(tmp_path / "id"), "10.0.0.3", 1883, insecure=True)),
            ("legacy", cbor2.dumps({k: v for k, v in cbor2.loads(fb.provision(
                str(tmp_path / "id"), "10.0.0.3", 1884, insecure=True)).items() if k != "insecure"})),
            ("tls", fb.provision(str(tmp_path / "id"), "10.0.0.3", 8883, pki.ca_cert, cert, key))):
        path = tmp_path / (name + ".cbor")
        path.write_bytes(settings)
        paths.append(str(path))
    script = tmp_path / "warn.py"
    script.write_text(
        "import sys, config\n"
        "for path in sys.argv[1:]:\n"
        "    print('--', path.rsplit('/', 1)[1])\n"
        "    config.warn_plaintext(config.load_device(path), lambda level, text: print(level, text))\n")
    result = micropython(str(script), *paths)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "-- insecure.cbor",
        "warning plaintext MQTT to 10.0.0.3:1883 (provisioned with --insecure)",
        "-- legacy.cbor",
        "warning plaintext MQTT to 10.0.0.3:1884 (no TLS in the device settings: re-provision with --ca, --cert "
        "and --key)",
        "-- tls.cbor",
    ]


def test_the_console_s_idle_logout_reaches_the_device(tmp_path):
    out = tmp_path / "board.cbor"
    result = cli("compile-board", BOARD, "--console", "0", "--console-idle", "120", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert cbor2.loads(out.read_bytes())["console_idle_ms"] == 120000
    default = tmp_path / "default.cbor"
    default.write_bytes(fb.compile_board(BOARD, console="0"))
    damaged = tmp_path / "damaged.cbor"
    data = cbor2.loads(default.read_bytes())
    data["console_idle_ms"] = -5
    damaged.write_bytes(cbor2.dumps(data))
    script = tmp_path / "load.py"
    script.write_text(
        "import sys, config\n"
        "print(config.load_board(sys.argv[1]).console_idle_ms, config.load_board(sys.argv[2]).console_idle_ms)\n"
        "try:\n    config.load_board(sys.argv[3])\nexcept config.ConfigError as e:\n    print('refused:', e)\n")
    result = micropython(str(script), str(out), str(default), str(damaged))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "120000 None"
    assert lines[1].startswith("refused: ") and "console_idle_ms -5 is not a positive number of ms" in lines[1]


def test_the_device_loads_its_config_and_refuses_damage(pki, tmp_path):
    create_identity(str(tmp_path / "id"), "fw-build-3", "HMAC256")
    (tmp_path / "board.cbor").write_bytes(fb.compile_board(BOARD, ["uart0=1"]))
    atomic_write(str(tmp_path / "device.cbor"), fb.provision(str(tmp_path / "id"), "127.0.0.1", 1883, insecure=True),
                 mode=0o600)
    (tmp_path / "damaged.cbor").write_bytes(fb.compile_board(BOARD)[:-9])
    script = tmp_path / "load.py"
    script.write_text(
        "import sys, config\n"
        "b = config.load_board(sys.argv[1]); d = config.load_device(sys.argv[2])\n"
        "print(b.board.name, sorted(b.board.sensors), b.uarts, repr(d))\n"
        "try:\n    config.load_board(sys.argv[3])\nexcept config.ConfigError as e:\n    print('refused:', e)\n")
    result = micropython(str(script), str(tmp_path / "board.cbor"), str(tmp_path / "device.cbor"),
                         str(tmp_path / "damaged.cbor"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo-gateway ['cabinet_temp', 'coolant_flow', 'coolant_temp', 'fan_speed'] {'uart0': [1, None, None]}" \
        in result.stdout
    assert "DeviceSettings('fw-build-3', broker 127.0.0.1:1883, plaintext)" in result.stdout
    assert "refused:" in result.stdout and "not valid CBOR" in result.stdout


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("firmware"))
    result = cli("build", "--out", out)
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def test_build_compiles_every_module_for_the_esp32(build):
    out, report = build
    tree = os.path.join(out, "fs")
    for source, target in fb.firmware_sources():
        device_path = target if target == "main.py" else target[:-3] + ".mpy"
        path = os.path.join(tree, device_path)
        assert os.path.getsize(path) > 0, device_path
        if device_path.endswith(".mpy"):
            with open(path, "rb") as f:
                header = f.read(4)
            # mpy v6 bytecode (the arch bits stay 0 without native code:
            # bytecode .mpy files run on any port of this mpy version)
            assert header[:2] == b"M\x06", "%s: not a v6 .mpy" % device_path
        assert device_path in report
    for host_only in ("unix_main.mpy", "unix_hw.mpy", "unix_flash.mpy"):  # the test vehicle stays home
        assert not os.path.exists(os.path.join(tree, "lib", host_only))
    assert "total" in report and os.path.getsize(os.path.join(out, "bundle.romfs")) > 0


def test_flash_dry_run_prints_the_mpremote_commands(build):
    out, _ = build
    result = cli("flash", "--port", "/dev/ttyUSB0", "--out", out, "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    mpremote = os.path.join(os.path.dirname(sys.executable), "mpremote")
    assert lines == [
        "%s connect /dev/ttyUSB0 fs cp -r %s/fs/lib :" % (mpremote, out),
        "%s connect /dev/ttyUSB0 fs cp %s/fs/main.py :main.py" % (mpremote, out),
        "%s connect /dev/ttyUSB0 reset" % mpremote,
    ]
    missing = cli("flash", "--port", "/dev/ttyUSB0", "--out", out + "-none", "--dry-run")
    assert missing.returncode == 2 and "make firmware" in missing.stderr


def _modes(top):
    """{path relative to top: mode} for top and everything under it."""
    modes = {".": stat.S_IMODE(os.lstat(top).st_mode)}
    for directory, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(directory, name)
            modes[os.path.relpath(path, top)] = stat.S_IMODE(os.lstat(path).st_mode)
    return modes


def test_build_with_device_settings_is_private(pki, tmp_path, umask_022):
    """`firmware build --include device.cbor` (a real provisioned one: HMAC
    secret, TLS client key, Wi-Fi password) under umask 022, into a build
    directory left world-readable by an earlier build: the directory and
    every directory under it end 0700, every file 0600; `flash --dry-run`
    changes none of it."""
    identity = create_identity(str(tmp_path / "id"), "fw-private-1", "HMAC256")
    cert, key = pki.client("fw-private-1")
    device = tmp_path / "device.cbor"
    wifi_password = "wifi-pw-%s" % os.getpid()
    result = cli("provision", "--identity", identity.directory, "--broker", "10.0.0.4:8883", "--ca", pki.ca_cert,
                 "--cert", cert, "--key", key, "--wifi-ssid", "plant", "-o", str(device),
                 env={"EA_WIFI_PASSWORD": wifi_password})
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(os.stat(device).st_mode) == 0o600
    settings = cbor2.loads(device.read_bytes())
    assert settings["wifi"]["password"] == wifi_password and settings["tls"]["key"]
    board = tmp_path / "board.cbor"
    assert cli("compile-board", BOARD, "-o", str(board)).returncode == 0
    # An earlier build, as the default umask made it.
    out = tmp_path / "build" / "firmware"
    (out / "fs" / "lib").mkdir(parents=True)
    (out / "fs" / "device.cbor").write_bytes(b"stale")
    (out / "bundle.romfs").write_bytes(b"stale")
    (out / "size-report.txt").write_text("stale")
    assert _modes(str(out))["."] == 0o755 and _modes(str(out))["bundle.romfs"] == 0o644

    result = cli("build", "--out", str(out), "--include", str(board), "--include", str(device))
    assert result.returncode == 0, result.stderr
    modes = _modes(str(out))
    wrong = {path: "%04o" % mode for path, mode in modes.items()
             if mode != (0o700 if os.path.isdir(os.path.join(out, path)) else 0o600)}
    assert not wrong, wrong
    assert "was mode 0755, now 0700" in result.stderr
    secret = identity._secret
    for shown in (secret.hex(), wifi_password):
        assert shown not in result.stdout + result.stderr
    for path in (".", "fs", "fs/lib", "fs/lib/edge_agent/core", "fs/device.cbor", "fs/board.cbor", "fs/main.py",
                 "fs/lib/app.mpy", "bundle.romfs", "size-report.txt"):
        assert path in modes, sorted(modes)
    assert len(modes) > 50
    # Why the image is private too: it packs the settings, secret and all.
    assert (out / "fs" / "device.cbor").read_bytes() == device.read_bytes()
    image = (out / "bundle.romfs").read_bytes()
    for held in (secret, settings["tls"]["key"], wifi_password.encode()):
        assert held in image
    assert stat.S_IMODE((tmp_path / "build").stat().st_mode) == 0o755  # --out's parent: left as it was

    flashed = cli("flash", "--port", "/dev/ttyUSB0", "--out", str(out), "--dry-run")
    assert flashed.returncode == 0, flashed.stderr
    assert _modes(str(out)) == modes
    # An include whose name the tree already has is refused, not overwritten.
    clash = cli("build", "--out", str(out), "--include", str(device), "--include", str(device))
    assert clash.returncode == 2 and "already has /device.cbor" in clash.stderr, clash.stderr


def test_flash_store_detects_every_torn_write_under_micropython(tmp_path):
    result = micropython("tests/firmware/mp_flash_store.py", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok ") and int(result.stdout.split()[1]) > 500


def test_config_loader_refuses_any_bytes_cleanly(tmp_path):
    """Whatever a damaged flash leaves in board.cbor or device.cbor, the
    loader returns a valid config or raises ConfigError/BoardError with a
    message: never another exception (the firmware's config.py, under
    CPython here; the MicroPython run above covers the interpreter)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    sys.path.insert(0, os.path.join(ROOT, "firmware"))
    try:
        import config
    finally:
        sys.path.remove(os.path.join(ROOT, "firmware"))
    from edge_agent.core.board import BoardError

    good = fb.compile_board(BOARD)
    path = str(tmp_path / "x.cbor")

    @settings(max_examples=150, deadline=None)
    @given(st.one_of(st.binary(max_size=64),
                     st.integers(0, len(good) - 1).map(lambda n: good[:n]),
                     st.tuples(st.integers(0, len(good) - 1), st.integers(1, 255)).map(
                         lambda p: good[:p[0]] + bytes([good[p[0]] ^ p[1]]) + good[p[0] + 1:])))
    def check(data):
        with open(path, "wb") as f:
            f.write(data)
        for loader in (config.load_board, config.load_device):
            try:
                loader(path)
            except (config.ConfigError, BoardError) as exc:
                assert str(exc)

    check()


STUBS = os.path.join(ROOT, "build", "stubs")


def _mypy(*files):
    if not os.path.exists(os.path.join(STUBS, "machine.pyi")):  # what `make firmware-check` installs
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", STUBS, "micropython-esp32-stubs"],
                       check=True, capture_output=True)
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "mypy"), "--config-file",
                           "firmware/mypy.ini", "--cache-dir", os.path.join(ROOT, "build", "mypy-cache"), *files],
                          capture_output=True, text=True, cwd=ROOT)


def test_firmware_type_checks_against_the_esp32_stubs(tmp_path):
    # Every module the board runs, MQTT client included (unix_* are the unix
    # port's stand-ins for the hardware), and exactly what `make firmware-check` lists.
    files = sorted("firmware/" + n for n in os.listdir(os.path.join(ROOT, "firmware"))
                   if n.endswith(".py") and not n.startswith("unix_"))
    assert {"firmware/mqtt_client.py", "firmware/mqtt_packets.py"} <= set(files)
    with open(os.path.join(ROOT, "Makefile")) as makefile:
        recipe = next(line for line in makefile if "--config-file firmware/mypy.ini" in line)
    listing = recipe.split("$$(", 1)[1].rsplit(")", 1)[0]  # the recipe's file list, a shell command
    listed = subprocess.run(["sh", "-c", listing], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert sorted(listed.split()) == files, recipe
    result = _mypy(*files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues found in %d source files" % len(files) in result.stdout, result.stdout
    # The check bites: a pin mode the ESP32 does not have, a UART method it
    # lacks, and a `type: ignore` that no longer hides anything.
    bad = tmp_path / "bad.py"
    bad.write_text("import machine\nmachine.Pin(2, machine.Pin.OUTPUT)\nmachine.UART(1).readexactly(3)\n"
                   "import time\ntime.ticks_ms()  # type: ignore[attr-defined]\n")
    result = _mypy(str(bad))
    assert result.returncode == 1, result.stdout
    for finding in ("OUTPUT", "readexactly", "bad.py:5: error: Unused \"type: ignore\" comment"):
        assert finding in result.stdout, result.stdout
