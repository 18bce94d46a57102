"""Run the real firmware on the MicroPython unix port (the test vehicle).

    MICROPYPATH=firmware:.:.frozen micropython firmware/unix_main.py \\
        --board build/board.cbor --device build/device.cbor \\
        --uart uart0=/dev/pts/7 --store /tmp/store [options]

Options (all optional but --board, --device, and --store or --flash):
    --store DIR              the store's directory on the host (VfsPosix: Linux's file system)
    --flash FILE             the store on littlefs instead, as on the board: FILE holds a flash
                             partition (firmware/unix_flash.py, 4 KiB blocks) that is
                             mounted at /flash as the ESP32 boot mounts its "vfs" partition: a
                             missing FILE is created erased and formatted; one that holds data
                             but no littlefs is refused (the board formats nothing then either).
                             The store and state dirs are then inside it: --store and --state
                             name them there (default /store and /state, as firmware/main.py)
    --flash-size BYTES       a new FILE's size (default 2 MiB: the vfs partition of a 4 MiB ESP32)
    --uart BUS=PATH          a bus's UART is this pty (repeatable)
    --output-pin OUT=FILE    a board output drives a simulated pin whose level is kept in FILE
    --input-pin SENSOR=FILE  a simulated switch read from FILE ("0"/"1") as SENSOR
    --clock-speed N          the clock runs N times real time (a simulated day in seconds)
    --clock-start MS         the clock's start, ms since the epoch (default: now)
    --telemetry-interval-ms N, --heap-log-ms N, --backoff-max-ms N, --grace-ms N
    --gc-threshold BYTES     collect after this many bytes allocated (default app.GC_THRESHOLD; 0: off)
    --console PATH           serve the technician console on this pty
    --console-idle-ms N      its idle logout (default: the board config's, else 15 min)
    --state DIR              where the command counters live (default: the store's path + ".state";
                             with --flash, /state)
    --duration S             stop cleanly after S real seconds

Standard input: a line "stop" stops cleanly (pending telemetry stored,
what the link allows sent, store closed, "last seq issued N" printed).
Everything else is firmware/app.py, the same code as on the ESP32; only
the hardware objects differ (firmware/unix_hw.py).
"""

import asyncio
import gc
import sys
import time

from uplink import client_for

USAGE = ("usage: unix_main.py --board FILE --device FILE (--store DIR | --flash FILE) [--uart BUS=PATH] ..."
         " (see the module doc)")
FLASH_MOUNT = "/flash"
FLASH_SIZE = 2 * 1024 * 1024


def log(level, text):
    print("%s %s" % (level, text))


def parse(argv):
    options = {"uart": [], "output-pin": [], "input-pin": []}
    i = 0
    while i < len(argv):
        name = argv[i]
        if not name.startswith("--") or i + 1 >= len(argv):
            raise SystemExit("%s: expected --OPTION VALUE\n%s" % (name, USAGE))
        key, value = name[2:], argv[i + 1]
        if key in options and isinstance(options[key], list):
            if "=" not in value:
                raise SystemExit("--%s %s: write NAME=PATH" % (key, value))
            options[key].append(value.split("=", 1))
        else:
            options[key] = value
        i += 2
    for required in ("board", "device", "flash" if "flash" in options else "store"):
        if required not in options:
            raise SystemExit("--%s is required\n%s" % (required, USAGE))
    return options


def store_dirs(options):
    """The store and state directories: on the host, or on the flash
    partition mounted first (see the module doc)."""
    if "flash" not in options:
        store = options["store"]
        return store, options.get("state", store.rstrip("/") + ".state")
    from unix_flash import mount_flash  # only here: it costs heap

    log("info", mount_flash(options["flash"], int(options.get("flash-size", FLASH_SIZE)), FLASH_MOUNT))
    inside = FLASH_MOUNT + "/"
    return (inside + options.get("store", "/store").lstrip("/"),
            inside + options.get("state", "/state").lstrip("/"))


async def _stop_after(stop, duration):
    if duration is not None:
        await asyncio.sleep(float(duration))
        stop.set()


def make_clock(speed, start_ms):
    if speed == 1 and start_ms is None:
        return lambda: time.time_ns() // 1000000
    base = start_ms if start_ms is not None else time.time_ns() // 1000000
    t0 = time.ticks_ms()
    return lambda: base + int(time.ticks_diff(time.ticks_ms(), t0) * speed)


async def watch_stdin(stop):
    reader = asyncio.StreamReader(sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return  # no stdin (/dev/null): only --duration stops us
        if line.strip() == b"stop":
            stop.set()
            return


async def main(options):
    import config as cfg  # here: dropped once the firmware is built (as firmware/main.py)

    settings = cfg.load_device(options["device"])
    client = client_for(settings)  # first, as firmware/main.py: the largest long-lived blocks
    board_config = cfg.load_board(options["board"])
    board = board_config.board
    # The rest of the code after the board, as firmware/main.py: its many
    # small objects fill the holes that loading the board leaves.
    gc.collect()
    from app import GC_THRESHOLD, Firmware
    from identity import HmacIdentity, trusted_operators
    from store_flash import FlashDir
    from unix_hw import SimPin, pty_uart

    speed = int(options.get("clock-speed", "1"))
    start = options.get("clock-start")
    clock = make_clock(speed, int(start) if start is not None else None)
    uarts = {}
    for bus_id, path in options["uart"]:
        if bus_id not in board.buses:
            raise SystemExit("--uart %s: no bus %r on board %s (buses: %s)"
                             % (bus_id, bus_id, board.name, ", ".join(sorted(board.buses))))
        uarts[bus_id] = pty_uart(path)
    output_pins = {}
    for output_id, path in options["output-pin"]:
        if output_id not in board.outputs:
            raise SystemExit("--output-pin %s: no output %r on board %s" % (output_id, output_id, board.name))
        output_pins[output_id] = SimPin(output_id, path, level=0 if board.outputs[output_id].active_low else 1)
    input_pins = {}
    for sensor_id, path in options["input-pin"]:
        if sensor_id not in board.sensors:
            raise SystemExit("--input-pin %s: no sensor %r on board %s" % (sensor_id, sensor_id, board.name))
        input_pins[sensor_id] = SimPin(sensor_id, path)
    backoff = options.get("backoff-max-ms")
    store, state = store_dirs(options)
    firmware = Firmware(board, HmacIdentity(settings.device_id, settings.secret), client,
                        FlashDir(store),
                        uarts, clock, log, output_pins=output_pins, input_pins=input_pins, speed=speed,
                        telemetry_interval_ms=int(options.get("telemetry-interval-ms", "10000")),
                        heap_log_ms=int(options.get("heap-log-ms", "5000")),
                        trusted=trusted_operators(settings.operators, settings.secret),
                        operator_scopes=settings.scopes, store_options=settings.store_options,
                        console_uart=pty_uart(options["console"]) if "console" in options else None,
                        console_idle_ms=int(options.get("console-idle-ms", "0")) or board_config.console_idle_ms,
                        state=FlashDir(state),
                        backoff_max_ms=int(backoff) if backoff else None,
                        gc_threshold=int(options.get("gc-threshold", GC_THRESHOLD)))
    cfg.warn_plaintext(settings, firmware.log)  # as firmware/main.py: before the first connect
    # Nothing holds the config module or the store's recovery after this
    # (their classes' instances gone): the collector takes them back.
    cfg.forget(cfg.BUILD_ONLY)
    del board_config, settings, cfg
    stop = asyncio.Event()
    running = asyncio.create_task(firmware.run())
    watcher = asyncio.create_task(watch_stdin(stop))
    duration = options.get("duration")
    stopper = asyncio.create_task(_stop_after(stop, duration))
    try:
        # Whichever ends first: a stop (stdin, --duration) or the firmware
        # itself, which only ends by raising (a bug, or MemoryError).
        while not stop.is_set() and not running.done():
            await asyncio.sleep(0.1)
        if running.done():
            stopper.cancel()
            try:
                await running
            except Exception as exc:
                log("error", "firmware failed: %s: %s; exiting (a board resets here)" % (type(exc).__name__, exc))
                sys.print_exception(exc)  # type: ignore[attr-defined]
            firmware.close()
            sys.exit(3)
        log("info", "stopping")
        await firmware.drain(int(options.get("grace-ms", "3000")))
    finally:
        stopper.cancel()
        running.cancel()
        watcher.cancel()
        firmware.close()
        log("info", "heap min_free=%s" % firmware.heap_min_free)


if __name__ == "__main__":
    asyncio.run(main(parse(sys.argv[1:])))
