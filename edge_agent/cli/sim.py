"""`edge-agent sim sensors|run|fleet`: the hardware simulator (simulator/).

The options are here; the simulator is imported only when a sim command
runs, so the agent on a gateway never loads it (nor its plotting
libraries).

Its package has two names: `simulator` in a source checkout (the tests,
the Makefile and the docs use it) and `edge_agent_simulator` where the
wheel installed it (a generic top-level `simulator` in a user's
site-packages would collide with anyone else's). Its modules import each
other relatively, so either name works; ``simulator_module`` picks the
one of this installation, so a process never loads it twice.
"""

import importlib
import os
import sys

INSTALLED_NAME = "edge_agent_simulator"

SENSORS_HELP = "a virtual sensor board on a pseudo-terminal (faults on demand)"
SENSORS_DESCRIPTION = (
    "A virtual sensor board on a pseudo-terminal: it prints the pty's path (give it to `edge-agent run --port`) "
    "and streams the line protocol for every sensor of one bus of the board, each at its sample period, with "
    "noise. Faults come from --fault or from commands on stdin, one per line: 'fail SENSOR MODE' (MODE: stuck, "
    "high, low, error, silent), 'heal SENSOR', 'garbage N' (N random bytes between frames), 'status', 'quit'. "
    "Replies and events go to stdout, one line each; the first is always 'pty PATH' (docs/simulator.md).")


def package_name():
    """'simulator' when this edge_agent runs from a source checkout (its
    pyproject.toml and simulator/ beside edge_agent/; the checkout is put
    on sys.path if it is not there), else the installed name."""
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.path.isfile(os.path.join(checkout, "pyproject.toml")) and \
            os.path.isfile(os.path.join(checkout, "simulator", "__init__.py")):
        if checkout not in sys.path:
            sys.path.append(checkout)
        return "simulator"
    return INSTALLED_NAME


def simulator_module(name):
    """The simulator's module ``name`` ('hardware.sensor_board')."""
    return importlib.import_module(package_name() + "." + name)


def cmd_sensors(args):
    return simulator_module("hardware.sensor_board").main_from_args(args)


def cmd_run(args):
    return simulator_module("scenarios.suite").main_from_args(args)


def cmd_fleet(args):
    return simulator_module("fleet.cli").main_from_args(args)


def add_commands(sub):
    sim = sub.add_parser("sim", help="hardware simulator")
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="ACTION")
    sim_sub.required = True

    sensors = sim_sub.add_parser("sensors", help=SENSORS_HELP, description=SENSORS_DESCRIPTION)
    sensors.add_argument("--board", required=True, metavar="FILE", help="board file whose sensors to simulate")
    sensors.add_argument("--bus", help="which bus of the board (default: the first)")
    sensors.add_argument("--seed", type=int, help="random seed, for repeatable noise")
    sensors.add_argument("--link", metavar="PATH", help="also make PATH a symlink to the pty")
    sensors.add_argument("--fault", action="append", default=[], metavar="SENSOR=MODE@S",
                         help="inject a fault S seconds after start (repeatable)")
    sensors.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    sensors.set_defaults(func=cmd_sensors)

    run = sim_sub.add_parser(
        "run", help="run scenario files on a virtual clock and check their expectations",
        description="Run scenarios (TOML) through the real pipeline on a virtual clock: core Device, durable "
                    "store, sealing, receiver. Exit 0 when every expectation holds, 1 when one fails, 2 for a "
                    "bad scenario file. The library is in simulator/scenarios/.")
    run.add_argument("scenarios", nargs="+", metavar="SCENARIO", help="scenario files (.toml)")
    run.add_argument("--seed", type=int, help="override each scenario's seed")
    run.add_argument("--junit", metavar="FILE", help="write a JUnit XML report (one testcase per expectation)")
    run.add_argument("--report", metavar="FILE",
                     help="write a PNG report (with several scenarios: FILE with the scenario name inserted)")
    run.add_argument("--quiet", action="store_true", help="only failures and the summary; no progress bar")
    run.add_argument("--live", action="store_true",
                     help="live mode: real time, real processes (mosquitto, receiver, the agent, the sensor board on "
                          "a pty, the fault proxy); faults really applied (simulator/scenarios/live/)")
    run.add_argument("--speed", type=float, metavar="X",
                     help="live mode: scenario seconds per wall second (default: the scenario's [live] speed, else 1)")
    run.set_defaults(func=cmd_run)

    fleet = sim_sub.add_parser(
        "fleet", help="run N simulated devices against a real mosquitto and the receiver (docs/fleet.md)",
        description="Run a fleet file: N devices (real core, store and uplink each, in one process) against a "
                    "real mosquitto with TLS and the reference receiver process, in real time, with a broker "
                    "restart and a common fault. Exit 0 when every expectation holds, 1 when one fails, 2 for "
                    "a bad fleet file. The library is in simulator/scenarios/fleet/.")
    fleet.add_argument("file", metavar="FLEET_FILE", help="fleet file (.toml)")
    fleet.add_argument("--count", type=int, metavar="N", help="override [fleet] count")
    fleet.add_argument("--no-jitter", action="store_true",
                       help="reconnect without jitter (the thundering herd, for comparison)")
    fleet.add_argument("--seed", type=int, help="override the file's seed")
    fleet.add_argument("--workdir", metavar="DIR", help="keep certificates, stores and the receiver database here")
    fleet.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    fleet.add_argument("--quiet", action="store_true", help="no progress display")
    fleet.set_defaults(func=cmd_fleet)
