"""`edge-agent service install`: the systemd unit and the agent.toml
skeleton written where systemd and the agent look (edge_agent/deploy/
install.py), and the commands that remain printed; `--print-unit` and
`--print-config` show the shipped files instead."""

import sys

from edge_agent.cli.common import EXIT_FAILED, EXIT_OK

NEXT_STEPS = """next, as root (docs/deploy.md):
  useradd --system --home-dir /var/lib/edge-agent --shell /usr/sbin/nologin edge-agent
  getent group gpio >/dev/null || groupadd --system gpio
  edit {config}, then: edge-agent config check {config}
  systemctl daemon-reload && systemctl enable --now edge-agent
  edge-agent doctor --config {config} --user edge-agent"""


def cmd_install(args):
    from edge_agent.deploy import install

    if args.print_unit:
        sys.stdout.write(install.unit_text(args.exec))
        return EXIT_OK
    if args.print_config:
        sys.stdout.write(install.shipped("agent.toml"))
        return EXIT_OK
    try:
        done = install.install(args.root, args.exec)
    except PermissionError as exc:
        print("edge-agent service install: %s: permission denied; run it as root (sudo), or give --root DIR "
              "to write into a staging tree" % exc.filename, file=sys.stderr)
        return EXIT_FAILED
    for path, what in done:
        print("%s: %s" % (path, what))
    print(NEXT_STEPS.format(config="/etc/edge-agent/agent.toml"))
    return EXIT_OK


def add_commands(sub):
    service = sub.add_parser("service", help="run the agent as a systemd service")
    service_sub = service.add_subparsers(dest="service_command", metavar="ACTION")
    service_sub.required = True
    install = service_sub.add_parser(
        "install", help="write the systemd unit and the agent.toml skeleton",
        description="Write /etc/systemd/system/edge-agent.service (ExecStart= this installation's edge-agent) "
        "and /etc/edge-agent/agent.toml (the annotated example; an existing one is kept), then print the "
        "commands that remain: the service user, the config, systemctl enable. docs/deploy.md.")
    install.add_argument("--root", default="/", metavar="DIR", help="write under DIR instead of / (a staging tree)")
    install.add_argument("--exec", metavar="PATH", help="the edge-agent the unit runs (default: the one beside "
                         "this Python, e.g. /opt/edge-agent/bin/edge-agent)")
    install.add_argument("--print-unit", action="store_true", help="print the unit instead of writing it")
    install.add_argument("--print-config", action="store_true", help="print the annotated agent.toml instead")
    install.set_defaults(func=cmd_install)
