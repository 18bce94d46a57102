"""ESP32 boot entry: /main.py on the board (copied as source; the rest is .mpy in /lib).

Reads /board.cbor and /device.cbor (made by `edge-agent firmware
compile-board` and `provision`), joins Wi-Fi, and runs firmware/app.py
with the board's machine.UART and machine.Pin objects, a littlefs store in
/store and our MQTT client. The unix port runs the same app through
firmware/unix_main.py with simulated hardware.
"""

import asyncio
import gc
import time

import machine

from uplink import client_for

BOARD = "/board.cbor"
DEVICE = "/device.cbor"
STORE = "/store"
STATE = "/state"  # command counters
WIFI_TIMEOUT_MS = 20000
CONSOLE_BAUD = 115200
UART_RX_BUFFER = 1024  # bytes the UART driver holds while the loop is busy (at 115200 baud: 90 ms)


def log(level, text):
    print("%s %s" % (level, text))


def clock():
    # Wall-clock ms since 1970 (MicroPython >= 1.22 uses the Unix epoch on
    # the ESP32); join_wifi sets the RTC by NTP so stamps are real.
    return time.time_ns() // 1000000


def join_wifi(wifi):
    import network

    station = network.WLAN(network.STA_IF)
    station.active(True)
    if not station.isconnected():
        station.connect(wifi["ssid"], wifi["password"])
        start = time.ticks_ms()
        while not station.isconnected():
            if time.ticks_diff(time.ticks_ms(), start) > WIFI_TIMEOUT_MS:
                log("warning", "wifi %s: not connected after %d ms; buffering offline" % (wifi["ssid"], WIFI_TIMEOUT_MS))
                return
            time.sleep_ms(100)
    try:
        import ntptime

        ntptime.settime()
    except (ImportError, OSError) as exc:
        log("warning", "ntp: %s; timestamps follow the RTC" % (exc,))


def open_uart(wiring, baud):
    uart_id, tx, rx = wiring
    kwargs = {"baudrate": baud, "timeout": 0, "rxbuf": UART_RX_BUFFER}
    if tx is not None:
        kwargs["tx"] = tx
        kwargs["rx"] = rx
    return machine.UART(uart_id, **kwargs)


def console_uart(wiring):
    if wiring is None:
        return None
    if wiring[0] == 0:
        import os

        os.dupterm(None, 0)  # UART0 carries the REPL: detach it, the console takes the port
    return open_uart(wiring, CONSOLE_BAUD)


def hardware(board_config):
    board = board_config.board
    uarts = {}
    for bus_id in sorted(board_config.uarts):
        uarts[bus_id] = open_uart(board_config.uarts[bus_id], board.buses[bus_id].baud)
    outputs = {}
    for output_id in sorted(board.outputs):
        output = board.outputs[output_id]
        # Every line starts on (the core's view), as physical level.
        outputs[output_id] = machine.Pin(output.line, machine.Pin.OUT, value=0 if output.active_low else 1)
    inputs = {}
    for sensor_id in sorted(board_config.inputs):
        inputs[sensor_id] = machine.Pin(board_config.inputs[sensor_id], machine.Pin.IN, machine.Pin.PULL_UP)
    return uarts, outputs, inputs


async def run():
    import config as cfg  # here: dropped once the firmware is built

    settings = cfg.load_device(DEVICE)
    # The MQTT client first: its buffers and TLS context (~1.7 KiB in one
    # block) are the largest long-lived blocks, and loading the board leaves
    # holes behind (the validator is dropped after it).
    client = client_for(settings)
    board_config = cfg.load_board(BOARD)
    # The rest of the code only now: its ~20 KiB of small objects (function
    # objects, classes, module dicts) fill the holes the board's loading
    # left, so the heap's free space after start is one piece, not holes
    # between long-lived objects (docs/firmware.md).
    gc.collect()
    from app import Firmware
    from identity import HmacIdentity, trusted_operators
    from store_flash import FlashDir

    if settings.wifi:
        join_wifi(settings.wifi)
    uarts, outputs, inputs = hardware(board_config)
    firmware = Firmware(board_config.board, HmacIdentity(settings.device_id, settings.secret), client,
                        FlashDir(STORE), uarts, clock, log, output_pins=outputs, input_pins=inputs,
                        trusted=trusted_operators(settings.operators, settings.secret), state=FlashDir(STATE),
                        operator_scopes=settings.scopes, store_options=settings.store_options,
                        console_uart=console_uart(board_config.console),
                        console_idle_ms=board_config.console_idle_ms)
    cfg.warn_plaintext(settings, firmware.log)  # before the first connect; on the console's log too
    # Nothing holds the config module or the store's recovery after this
    # (their classes' instances gone): the collector takes them back.
    cfg.forget(cfg.BUILD_ONLY)
    del board_config, settings, cfg
    await firmware.run()


def boot():
    """The firmware only ends by raising (a bug, MemoryError): log it and
    reset the board. The store is durable up to its last sync and the
    sequencer resumes past every number issued, so a reset loses at most
    the unsynced group-commit window, as a power cut would."""
    try:
        asyncio.run(run())
    except Exception as exc:
        log("error", "firmware failed: %s: %s; resetting" % (type(exc).__name__, exc))
        time.sleep_ms(1000)
        machine.reset()


boot()
