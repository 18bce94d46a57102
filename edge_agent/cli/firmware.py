"""`edge-agent firmware compile-board|provision|build|flash`: the ESP32
firmware's configs, build and flashing from the command line (the work is
edge_agent/tools/firmware_build.py)."""

import os
import subprocess
import sys

from edge_agent.atomic_file import atomic_write
from edge_agent.cli.common import EXIT_USAGE
from edge_agent.tools import firmware_build as fb


def add_commands(top):
    parser = top.add_parser("firmware", help="build, configure and flash the ESP32 firmware (docs/firmware.md)")
    parser.set_defaults(func=run)
    sub = parser.add_subparsers(dest="firmware_command", metavar="ACTION")
    sub.required = True
    compile_ = sub.add_parser("compile-board", help="validate a board file and compile it to the device's CBOR config")
    compile_.add_argument("board", metavar="BOARD")
    compile_.add_argument("-o", "--output", required=True, metavar="FILE", help="e.g. build/firmware/board.cbor")
    compile_.add_argument("--uart", action="append", default=[], metavar="BUS=ID[:TX:RX]",
                          help="read BUS from the ESP32's UART ID (optionally on GPIO TX/RX); repeatable")
    compile_.add_argument("--input", action="append", default=[], metavar="SENSOR=PIN",
                          help="read SENSOR from a switch on GPIO PIN (pull-up); repeatable")
    compile_.add_argument("--console", metavar="ID[:TX:RX]",
                          help="serve the technician console on this UART (0: the USB port, REPL detached)")
    compile_.add_argument("--console-idle", type=float, metavar="SECONDS",
                          help="log a technician out after this long without a key (default 900: 15 min)")
    compile_.set_defaults(firmware_func=_cmd_compile)

    prov = sub.add_parser("provision", help="the device's settings CBOR: id, HMAC secret, broker, DER certs (mode 0600)")
    prov.add_argument("--identity", required=True, metavar="DIR", help="an HMAC256 identity (`keys init --hmac`)")
    prov.add_argument("--broker", required=True, metavar="HOST:PORT")
    prov.add_argument("--ca", metavar="FILE")
    prov.add_argument("--cert", metavar="FILE")
    prov.add_argument("--key", metavar="FILE")
    prov.add_argument("--insecure", action="store_true",
                      help="no TLS: plaintext MQTT to a test broker only (needed when --ca/--cert/--key are not "
                           "given; recorded in the settings, and the board logs a warning at every boot)")
    prov.add_argument("--keepalive", type=int, default=30, metavar="S")
    prov.add_argument("--operator", action="append", default=[], metavar="NAME[:SCOPES]",
                      help="take signed commands (COSE_Mac0 under the device secret) from this operator; repeatable. "
                           "NAME:replay: only gap-repair requests from it (a receiver's key), nothing else")
    prov.add_argument("--window-bytes", type=int, metavar="N",
                      help="the store's replay window: acknowledged signals kept for gap repair, up to N bytes of "
                           "flash (default 131072 of the 256 KiB store; 0: none)")
    prov.add_argument("--window-hours", type=float, metavar="H",
                      help="keep acknowledged signals at most H hours (default 24; 0: no age bound)")
    prov.add_argument("--wifi-ssid", metavar="SSID", help="Wi-Fi network (password from $EA_WIFI_PASSWORD, never argv)")
    prov.add_argument("-o", "--output", required=True, metavar="FILE")
    prov.set_defaults(firmware_func=_cmd_provision)

    build_ = sub.add_parser("build", help="mpy-cross the firmware and the core, print the size report")
    build_.add_argument("--out", default="build/firmware", metavar="DIR",
                        help="the build's directory, made (or narrowed to) mode 0700; every file in it 0600")
    build_.add_argument("--march", default=fb.DEFAULT_MARCH, help="mpy-cross target (default xtensawin: ESP32)")
    build_.add_argument("--include", action="append", default=[], metavar="FILE",
                        help="also copy FILE to the device's root (board.cbor, device.cbor); copies are 0600, "
                             "as is the ROMFS image that packs them")
    build_.set_defaults(firmware_func=_cmd_build)

    flash = sub.add_parser("flash", help="copy a build to a board with mpremote and reset it")
    flash.add_argument("--port", required=True, metavar="DEV", help="e.g. /dev/ttyUSB0")
    flash.add_argument("--out", default="build/firmware", metavar="DIR", help="the build to copy")
    flash.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    flash.set_defaults(firmware_func=_cmd_flash)


def run(args):
    from edge_agent.core.board import BoardError
    from edge_agent.keys.identity import IdentityError

    try:
        return args.firmware_func(args)
    except (fb.FirmwareBuildError, BoardError, IdentityError, OSError) as exc:
        print("edge-agent firmware: error: %s" % exc, file=sys.stderr)
        return EXIT_USAGE


def _cmd_compile(args):
    data = fb.compile_board(args.board, args.uart, args.input, args.console, args.console_idle)
    with open(args.output, "wb") as f:
        f.write(data)
    print("%s: %d bytes (board %s)" % (args.output, len(data), args.board))
    return 0


def _cmd_provision(args):
    host, sep, port = args.broker.rpartition(":")
    if not sep or not port.isdigit():
        raise fb.FirmwareBuildError("--broker %s: write HOST:PORT, e.g. 192.168.1.10:8883" % args.broker)
    data = fb.provision(args.identity, host, int(port), args.ca, args.cert, args.key, args.keepalive, args.wifi_ssid,
                     os.environ.get("EA_WIFI_PASSWORD"), args.operator, insecure=args.insecure,
                     window_bytes=args.window_bytes, window_hours=args.window_hours)
    atomic_write(args.output, data, mode=0o600)  # 0600 from the first byte
    print("%s: %d bytes, mode 0600 (holds the device's secret: copy it to the device only)" % (args.output, len(data)))
    if args.insecure:
        print("edge-agent firmware: warning: --insecure: plaintext MQTT to %s:%s; signals and commands cross the "
              "network unencrypted and the broker is not authenticated (the board says so at every boot)"
              % (host, port), file=sys.stderr)
    return 0


def _cmd_build(args):
    before = fb.private_dir(args.out)  # before anything is written in it
    if before is not None and before & 0o077:
        print("edge-agent firmware: %s was mode %04o, now 0700: the build may hold device secrets (--include)"
              % (args.out, before), file=sys.stderr)
    _, report = fb.build(args.out, args.march, args.include)
    print(report, end="")
    print("tree to copy: %s/fs; ROMFS image: %s/bundle.romfs (%d bytes); report: %s/size-report.txt"
          % (args.out, args.out, os.path.getsize(os.path.join(args.out, "bundle.romfs")), args.out))
    return 0


def _cmd_flash(args):
    commands = fb.flash_commands(args.port, args.out, mpremote=fb.mpremote_path())
    for argv in commands:
        print(" ".join(argv))
        if not args.dry_run:
            result = subprocess.run(argv)
            if result.returncode:
                print("edge-agent firmware: error: %s exited %d" % (argv[0], result.returncode), file=sys.stderr)
                return 1
    return 0
