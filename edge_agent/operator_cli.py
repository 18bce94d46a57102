"""`edge-agent keys operator-*` / `keys technician-token` (and `cmd send`,
in downlink_cli.py): the operator side of signed operations."""

import sys

from edge_agent.core import operator as op

EXIT_OK = 0


def _usage(message):
    from edge_agent.cli import UsageError

    return UsageError(message)


def _load_operator(directory):
    from edge_agent.operator_keys import OperatorError, load_operator

    try:
        return load_operator(directory)
    except OperatorError as exc:
        raise _usage("--operator: %s" % exc) from None


def device_secret_for(registry_path, device_id):
    """The HMAC secret of ``device_id`` from a receiver registry (None for an
    Ed25519 device, which checks the operator's own signature)."""
    if registry_path is None:
        return None
    from edge_agent.identity import HMAC256

    device = _registry(registry_path).devices.get(device_id)
    if device is None:
        raise _usage("--registry %s: no device %r" % (registry_path, device_id))
    return device.secret if device.algorithm == HMAC256 else None


def model_boards(registry_path, model):
    """{device id: HMAC secret} of the registry's HMAC devices (boards) of
    ``model``: each checks a model command only as a Mac0 under its own
    secret, so each needs its own copy."""
    if registry_path is None:
        return {}
    from edge_agent.identity import HMAC256

    return dict((device_id, device.secret) for device_id, device in _registry(registry_path).devices.items()
                if device.model == model and device.algorithm == HMAC256)


def _registry(path):
    from edge_agent.registry import Registry, RegistryError

    try:
        return Registry.load(path)
    except RegistryError as exc:
        raise _usage("--registry: %s" % exc) from None


def cmd_operator_init(args):
    from edge_agent.operator_keys import OperatorError, create_operator

    try:
        operator = create_operator(args.dir, args.name)
    except OperatorError as exc:
        raise _usage(str(exc)) from None
    print("created operator %s in %s (private key mode 0600, never printed)" % (operator.name, args.dir))
    print("let devices trust it: edge-agent keys operator-entry %s >> operators.toml" % args.dir)
    return EXIT_OK


def cmd_operator_entry(args):
    sys.stdout.write(_load_operator(args.dir).public_entry())
    return EXIT_OK


def cmd_technician_token(args):
    from edge_agent.operator_keys import OperatorError, parse_duration

    operator = _load_operator(args.operator)
    scopes = [s for part in args.scopes for s in part.split(",") if s]
    try:
        token = operator.technician_token(args.device, args.subject, scopes, parse_duration(args.ttl),
                                          device_secret=device_secret_for(args.registry, args.device))
    except OperatorError as exc:
        raise _usage(str(exc)) from None
    print(op.token_to_text(token))
    return EXIT_OK


def add_commands(keys_sub):
    """Register the operator subcommands under `edge-agent keys`."""
    init = keys_sub.add_parser("operator-init", help="create an operator signing key (Ed25519)")
    init.add_argument("dir", help="directory to create (private key written mode 0600)")
    init.add_argument("--name", required=True, help="operator name: the key id devices know it by")
    init.set_defaults(func=cmd_operator_init)

    entry = keys_sub.add_parser("operator-entry", help="print the trusted-operators block for an operator")
    entry.add_argument("dir")
    entry.set_defaults(func=cmd_operator_entry)

    token = keys_sub.add_parser("technician-token", help="sign a short-lived console token for one device")
    token.add_argument("--operator", required=True, metavar="DIR", help="operator directory (keys operator-init)")
    token.add_argument("--device", required=True, metavar="ID", help="the device the token is valid on")
    token.add_argument("--subject", required=True, metavar="NAME", help="the technician's name (audited)")
    token.add_argument("--scopes", required=True, nargs="+", metavar="SCOPE",
                       help="what the holder may do: %s (space or comma separated)" % ", ".join(op.SCOPES))
    token.add_argument("--ttl", default="8h", help="lifetime, e.g. 30m, 8h (default 8h, at most 7d)")
    token.add_argument("--registry", metavar="FILE",
                       help="devices.toml: for an HMAC device, MAC the token with its secret (it has no Ed25519)")
    token.set_defaults(func=cmd_technician_token)
