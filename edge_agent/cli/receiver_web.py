"""The fleet web view from the command line (docs/operator-view.md): its
options (`receiver run --http ...`, `receiver web`) and the `receiver web`
command, which serves the view of a database with no broker."""

import asyncio
import os

from edge_agent.cli.common import EXIT_OK, UsageError, run_until_signalled


def add_http_options(parser, required):
    group = parser.add_argument_group(
        "fleet web view (docs/operator-view.md)",
        "read-only pages over the database; a token or a TLS client certificate is required (no default)")
    group.add_argument("--http", required=required, metavar="HOST:PORT",
                       help="serve the web view here, e.g. 127.0.0.1:8080")
    group.add_argument("--http-token-file", metavar="FILE",
                       help="the read token (first line; or env %s); `openssl rand -hex 32 > FILE`" % "EA_HTTP_TOKEN")
    group.add_argument("--http-write-token-file", metavar="FILE",
                       help="the write token (acknowledging tickets; or env EA_HTTP_WRITE_TOKEN): audited")
    group.add_argument("--http-cert", metavar="PEM", help="HTTPS: this server's certificate")
    group.add_argument("--http-key", metavar="PEM", help="HTTPS: this server's private key")
    group.add_argument("--http-ca", metavar="PEM",
                       help="HTTPS: CA whose client certificates may read (mutual TLS, as for the broker)")
    group.add_argument("--http-insecure", action="store_true",
                       help="plaintext HTTP on an address that is not loopback (tokens cross the network in clear)")


def parse_http(text):
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError("--http %r: write HOST:PORT, e.g. 127.0.0.1:8080" % text)
    return host, int(port)


def web_view(args):
    """A coroutine function serving the web view of --db until cancelled,
    from add_http_options's options; UsageError for bad ones."""
    from edge_agent.broker import TLSConfigError
    from edge_agent.receiver.storage import StorageError, open_storage
    from edge_agent.receiver.web import access as acc
    from edge_agent.receiver.web import app as web_app

    host, port = parse_http(args.http)
    try:
        access = acc.Access(acc.load_token(args.http_token_file, acc.TOKEN_ENV, "--http-token-file"),
                            acc.load_token(args.http_write_token_file, acc.WRITE_TOKEN_ENV, "--http-write-token-file"),
                            client_ca=bool(args.http_ca))
        context = None
        if args.http_cert or args.http_key or args.http_ca:
            if not (args.http_cert and args.http_key):
                raise UsageError("HTTPS needs --http-cert and --http-key (--http-ca alone cannot serve TLS)")
            context = acc.server_context(args.http_cert, args.http_key, args.http_ca)
    except (acc.AccessError, TLSConfigError) as exc:
        raise UsageError(str(exc)) from None
    routes, registry = _ack_routes(args)
    if context is None and not acc.is_loopback(host) and not args.http_insecure:
        raise UsageError("--http %s: plaintext HTTP off this machine would send the token in clear: give "
                         "--http-cert/--http-key, or --http-insecure" % args.http)

    async def serve():
        try:
            app = await web_app.make_app(lambda: open_storage(args.db), access, routes, registry)
        except StorageError as exc:
            raise UsageError(str(exc)) from None
        runner = await web_app.serve(app, host, port, context)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    return serve


def _ack_routes(args):
    """(routes, registry) for the webhooks of acknowledgements made in the
    view: `receiver run`'s --routes and --registry, or `receiver web`'s."""
    from edge_agent.cli.common import load_registry
    from edge_agent.receiver.routes import RoutesError, load_routes

    if not getattr(args, "routes", None):
        return None, None
    try:
        routes = load_routes(args.routes)
    except RoutesError as exc:
        raise UsageError(str(exc)) from None
    return routes, load_registry(args.registry) if getattr(args, "registry", None) else None


def cmd_receiver_web(args):
    from edge_agent.receiver.storage import is_postgres_url

    if not is_postgres_url(args.db) and not os.path.exists(args.db):
        raise UsageError("--db %s: no such database; the receiver creates it on its first run" % args.db)
    asyncio.run(run_until_signalled(web_view(args)()))
    return EXIT_OK


def add_commands(receiver_sub):
    receiver_web = receiver_sub.add_parser("web", help="the fleet web view of a receiver's database (no broker)")
    receiver_web.add_argument("--db", default="receiver.sqlite", metavar="FILE|URL")
    add_http_options(receiver_web, required=True)
    receiver_web.add_argument("--routes", metavar="FILE",
                              help="the receiver's routes file: acknowledgements made in the view queue the webhooks "
                                   "of routes that take them; the running receiver sends them")
    receiver_web.add_argument("--registry", metavar="FILE", help="devices.toml, for routes that match devices' models")
    receiver_web.set_defaults(func=cmd_receiver_web)
