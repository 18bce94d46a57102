"""`edge-agent keys ...`: device identities (`init`, `registry-entry`,
`show`) and the operator side of signed operations (`operator-init`,
`operator-entry`, `technician-token`; `cmd send` is in cmd.py)."""

import os
import shlex
import socket
import stat
import sys

from edge_agent.cli.common import EXIT_OK, UsageError, load_identity, load_registry
from edge_agent.core import operator as op


def default_device_id():
    name = socket.gethostname().split(".")[0]
    cleaned = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)
    return cleaned[:64] or "device"


def cmd_keys_init(args):
    from edge_agent.keys.identity import HMAC256, EDDSA, IdentityError, create_identity

    try:
        identity = create_identity(args.dir, args.device_id or default_device_id(), HMAC256 if args.hmac else EDDSA)
    except IdentityError as exc:
        raise UsageError(str(exc)) from None
    print("created %s identity for device %s in %s (private key mode 0600, never printed)"
          % (identity.algorithm, identity.device_id, args.dir))
    print("register it with the receiver: %s" % registry_command(args.dir, identity.algorithm == HMAC256))
    return EXIT_OK


def registry_command(directory, secret):
    """The command that adds an identity to the receiver's registry: an
    HMAC device's entry holds its secret, so it goes to a file kept 0600."""
    return "edge-agent keys registry-entry %s%s --output devices.toml" % (
        shlex.quote(directory), " --include-secret" if secret else "")


def cmd_keys_registry_entry(args):
    from edge_agent.keys.identity import HMAC256, IdentityError, append_registry_entry

    identity = load_identity(args.dir)
    try:
        entry = identity.registry_entry(model=args.model, include_secret=args.include_secret)
    except IdentityError as exc:
        raise UsageError(str(exc)) from None
    secret = args.include_secret and identity.algorithm == HMAC256
    if args.output:
        try:
            created = append_registry_entry(args.output, entry, identity.device_id, secret)
        except IdentityError as exc:
            raise UsageError("--output %s" % exc) from None
        print("added device %s (%s%s) to %s%s" % (identity.device_id, identity.algorithm,
                                                   ", with its secret" if secret else "", args.output,
                                                   " (a new file, mode 0600)" if created else ""))
        return EXIT_OK
    if secret:
        _check_secret_stdout(identity.device_id)
    sys.stdout.write(entry)
    return EXIT_OK


def _check_secret_stdout(device_id):
    """An HMAC secret about to go to stdout: refused into a regular file
    that group or others can read (`>> devices.toml` under umask 022 makes
    one), else said on stderr (a pipe or a terminal may be what is meant:
    ssh to the receiver, a secret store)."""
    try:
        mode = os.fstat(sys.stdout.fileno()).st_mode
    except (OSError, ValueError):
        mode = 0
    if stat.S_ISREG(mode) and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError("--include-secret: stdout is a file readable by group or others (mode %o); nothing "
                         "written. Use --output devices.toml (appends, kept mode 0600), or `chmod 600` the "
                         "file first" % stat.S_IMODE(mode))
    sys.stderr.write("edge-agent: warning: stdout gets device %s's HMAC secret; keep where it goes private "
                     "(--output FILE writes it mode 0600)\n" % device_id)


def cmd_keys_show(args):
    identity = load_identity(args.dir)
    print("device_id  %s" % identity.device_id)
    print("algorithm  %s" % identity.algorithm)
    if identity.algorithm == "EdDSA":
        print("public_key %s" % identity.public_key_hex())
    return EXIT_OK


def load_operator(directory):
    from edge_agent.keys.operators import OperatorError, load_operator as load

    try:
        return load(directory)
    except OperatorError as exc:
        raise UsageError("--operator: %s" % exc) from None


def device_secret_for(registry_path, device_id):
    """The HMAC secret of ``device_id`` from a receiver registry (None for an
    Ed25519 device, which checks the operator's own signature)."""
    if registry_path is None:
        return None
    from edge_agent.keys.identity import HMAC256

    device = load_registry(registry_path).devices.get(device_id)
    if device is None:
        raise UsageError("--registry %s: no device %r" % (registry_path, device_id))
    return device.secret if device.algorithm == HMAC256 else None


def model_boards(registry_path, model):
    """{device id: HMAC secret} of the registry's HMAC devices (boards) of
    ``model``: each checks a model command only as a Mac0 under its own
    secret, so each needs its own copy."""
    if registry_path is None:
        return {}
    from edge_agent.keys.identity import HMAC256

    return dict((device_id, device.secret) for device_id, device in load_registry(registry_path).devices.items()
                if device.model == model and device.algorithm == HMAC256)


def cmd_operator_init(args):
    from edge_agent.keys.operators import OperatorError, create_operator

    try:
        operator = create_operator(args.dir, args.name)
    except OperatorError as exc:
        raise UsageError(str(exc)) from None
    print("created operator %s in %s (private key mode 0600, never printed)" % (operator.name, args.dir))
    print("let devices trust it: edge-agent keys operator-entry %s >> operators.toml" % args.dir)
    return EXIT_OK


def cmd_operator_entry(args):
    from edge_agent.keys.operators import OperatorError

    try:
        sys.stdout.write(load_operator(args.dir).public_entry(args.scopes))
    except OperatorError as exc:
        raise UsageError(str(exc)) from None
    return EXIT_OK


def cmd_technician_token(args):
    from edge_agent.keys.operators import OperatorError, parse_duration

    operator = load_operator(args.operator)
    scopes = [s for part in args.scopes for s in part.split(",") if s]
    try:
        token = operator.technician_token(args.device, args.subject, scopes, parse_duration(args.ttl),
                                          device_secret=device_secret_for(args.registry, args.device))
    except OperatorError as exc:
        raise UsageError(str(exc)) from None
    print(op.token_to_text(token))
    return EXIT_OK


def add_commands(sub):
    """`edge-agent keys ...`: device identities, operator keys, technician tokens."""
    keys = sub.add_parser("keys", help="device identities and signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION")
    keys_sub.required = True
    init = keys_sub.add_parser("init", help="create a device identity (Ed25519, or HMAC-SHA256 for small boards)")
    init.add_argument("--dir", required=True, help="directory to create (private key written mode 0600)")
    init.add_argument("--device-id", default=None, help="the device id (default: the host name)")
    init.add_argument("--hmac", action="store_true", help="HMAC-SHA256 shared secret instead of Ed25519")
    init.set_defaults(func=cmd_keys_init)
    entry = keys_sub.add_parser("registry-entry", help="print (or append to --output) the receiver's devices.toml "
                                "block for an identity")
    entry.add_argument("dir")
    entry.add_argument("--model", help="product model, for fleet-wide advisories")
    entry.add_argument("--include-secret", action="store_true",
                       help="HMAC identities only: include the shared secret (the receiver needs it); to stdout "
                            "only if it is not a file others can read")
    entry.add_argument("--output", metavar="FILE",
                       help="append the block to FILE (the registry, e.g. devices.toml): created mode 0600; "
                            "refused if FILE already registers the device or, with a secret, if group or "
                            "others can read it")
    entry.set_defaults(func=cmd_keys_registry_entry)
    show = keys_sub.add_parser("show", help="show an identity's device id, algorithm and public key")
    show.add_argument("dir")
    show.set_defaults(func=cmd_keys_show)

    init = keys_sub.add_parser("operator-init", help="create an operator signing key (Ed25519)")
    init.add_argument("dir", help="directory to create (private key written mode 0600)")
    init.add_argument("--name", required=True, help="operator name: the key id devices know it by")
    init.set_defaults(func=cmd_operator_init)

    entry = keys_sub.add_parser("operator-entry", help="print the trusted-operators block for an operator")
    entry.add_argument("dir")
    entry.add_argument("--scopes", nargs="+", metavar="SCOPE",
                       help="limit the operator to these scopes' commands: %s (a receiver's repair key: replay; "
                            "without it, every command but replay)" % ", ".join(op.OPERATOR_SCOPES))
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
