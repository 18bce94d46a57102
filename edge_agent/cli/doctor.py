"""`edge-agent doctor`: is this gateway ready to run the agent as a
service? Every check of edge_agent/deploy/doctor.py on the config's files,
devices and broker, judged for the service user, printed with a fix; exit
1 when any fails."""

import os
import pwd
import sys

from edge_agent.cli.common import EXIT_FAILED, EXIT_OK, UsageError, parse_broker

DEFAULT_CONFIG = "/etc/edge-agent/agent.toml"
SERVICE_USER = "edge-agent"


def unit_groups():
    """The shipped unit's SupplementaryGroups=."""
    from edge_agent.deploy.install import shipped

    for line in shipped("edge-agent.service").splitlines():
        if line.startswith("SupplementaryGroups="):
            return line.split("=", 1)[1].split()
    return []


def default_user():
    try:
        pwd.getpwnam(SERVICE_USER)
        return SERVICE_USER
    except KeyError:
        return pwd.getpwuid(os.geteuid()).pw_name


def run_checks(args):
    """[Result] for the options of `doctor`."""
    from edge_agent.broker import TLSConfigError, client_context
    from edge_agent.core import store as st
    from edge_agent.deploy import doctor as dr
    from edge_agent.deploy.config import ConfigError, load_config

    try:
        values = load_config(args.config)
    except ConfigError as exc:
        return [dr.Result("config", dr.FAIL, "%s: %s" % (exc.source, p.describe()), "edge-agent config check %s"
                          % exc.source) for p in exc.problems]
    results = []
    groups = unit_groups() if args.groups is None else [g for g in args.groups.split(",") if g]
    user = args.user or default_user()
    try:
        account = dr.Account.named(user, groups)
    except KeyError:
        return results + [dr.Result("service user", dr.FAIL, "no user %s" % user,
                                    "useradd --system --home-dir /var/lib/edge-agent --shell /usr/sbin/nologin %s"
                                    % user)]
    results.append(dr.Result("service user", dr.OK, "%s (uid %d; groups %s)" % (
        user, account.uid, ", ".join(sorted(dr._group_name(g) for g in account.gids)))))
    results.extend(dr.check_groups(groups))
    results.append(dr.check_readable("config", args.config, account))
    if "board" in values:
        board_result, board = dr.check_board(values["board"])
        results.append(board_result)
        if board is not None:
            overrides = dict(p.split("=", 1) for p in values.get("port", []))
            results.extend(dr.check_serial_ports(board, overrides, values.get("console", []), account))
            results.extend(dr.check_gpio(board, account))
    else:
        results.append(dr.Result("board file", dr.FAIL, "agent.board is not set", "add board = \"...\" to [agent]"))
    results.append(dr.check_clock())
    if "identity" in values:
        results.extend(dr.check_identity(values["identity"], account))
    else:
        results.append(dr.Result("identity", dr.FAIL, "agent.identity is not set", "add identity = \"...\" to [agent]"))
    for dest, label in (("ca", "broker CA"), ("cert", "client certificate")):
        if dest in values:
            results.append(dr.check_certificate(label, values[dest]))
    if "key" in values:
        results.append(dr.check_private_file("client key", values["key"], account))
    results.append(_broker(values, args.timeout, dr, client_context, TLSConfigError))
    identity = values.get("identity", "")
    store_dir = values.get("store_dir") or os.path.join(identity, "store")
    results.append(dr.check_disk(store_dir, values.get("store_max_bytes", st.DEFAULT_MAX_BYTES)))
    return results


def _broker(values, timeout, dr, client_context, TLSConfigError):
    if "broker" not in values:
        return dr.Result("broker", dr.FAIL, "broker.address is not set", "add address = \"HOST:PORT\" to [broker]")
    insecure = values.get("insecure", False)
    try:
        host, port = parse_broker(values["broker"], tls=not insecure)
    except UsageError as exc:
        return dr.Result("broker", dr.FAIL, str(exc), "write HOST:PORT in broker.address")
    if insecure:
        return dr.check_broker(host, port, None)
    if "ca" not in values:
        return dr.Result("broker", dr.FAIL, "no broker.ca: TLS needs the CA that signed the broker's certificate",
                         "add ca = \"/etc/edge-agent/ca.pem\" to [broker]")
    try:
        context = client_context(values["ca"], values.get("cert"), values.get("key"))
    except TLSConfigError as exc:
        return dr.Result("broker", dr.FAIL, str(exc).replace("--", "broker."), "check the TLS files in [broker]")
    return dr.check_broker(host, port, context, timeout_s=timeout)


def cmd_doctor(args):
    results = run_checks(args)
    counts = {}
    for result in results:
        for line in result.lines():
            print(line)
        counts[result.verdict] = counts.get(result.verdict, 0) + 1
    failed = counts.get("FAIL", 0)
    print("%d checks: %d ok, %d warnings, %d failed%s" % (
        len(results), counts.get("ok", 0), counts.get("warn", 0), failed, "" if failed else "; ready"))
    sys.stdout.flush()
    return EXIT_FAILED if failed else EXIT_OK


def add_commands(sub):
    doctor = sub.add_parser(
        "doctor", help="check this gateway is ready to run the agent as a service, with a fix for each problem",
        description="Check the config's board file, serial ports and GPIO chips (readable and writable by the "
        "service user), the groups the unit asks for, the clock's synchronisation, the identity and key "
        "permissions, the TLS certificates' expiry, the broker over TLS, and disk free for the store. "
        "Exit 0 when nothing failed, 1 otherwise.")
    doctor.add_argument("--config", default=DEFAULT_CONFIG, metavar="FILE", help="agent.toml (default %(default)s)")
    doctor.add_argument("--user", metavar="NAME", help="judge access for this user (default: %s when it exists, "
                        "else you)" % SERVICE_USER)
    doctor.add_argument("--groups", metavar="G1,G2", help="the unit's SupplementaryGroups= (default: the shipped "
                        "unit's, dialout,gpio); they must exist and count as the user's")
    doctor.add_argument("--timeout", type=float, default=5.0, metavar="S", help="broker connection timeout")
    doctor.set_defaults(func=cmd_doctor)
