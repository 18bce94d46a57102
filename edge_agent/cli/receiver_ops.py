"""What operations teams get from the receiver on the command line: the
`receiver run` options --routes (webhooks from the outbox) and --metrics
(Prometheus), and the commands `receiver tickets`, `receiver ack` and
`receiver outbox` (docs/operator-view.md)."""

import asyncio
import datetime
import getpass
import os
import sys
import time

from edge_agent.cli.common import EXIT_FAILED, EXIT_OK, UsageError, load_registry


def add_run_options(parser):
    group = parser.add_argument_group("operations (docs/operator-view.md)")
    group.add_argument("--routes", metavar="FILE",
                       help="routes file (TOML): alerts to webhooks by severity, model, device, condition; "
                            "delivered from an outbox in the database, signed, retried, dead-lettered")
    group.add_argument("--metrics", metavar="[HOST:]PORT",
                       help="serve Prometheus metrics at http://HOST:PORT/metrics (a bare port binds 127.0.0.1)")


def routing(args, storage, registry):
    """The AlertRouting for `receiver run` (tickets always; webhooks with
    --routes); raises UsageError for a bad routes file."""
    from edge_agent.receiver.routes import RoutesError, load_routes
    from edge_agent.receiver.routing import AlertRouting

    routes = None
    if args.routes:
        try:
            routes = load_routes(args.routes)
        except RoutesError as exc:
            raise UsageError(str(exc)) from None
    return AlertRouting(storage, routes, registry)


def metrics_address(args):
    """--metrics as (host, port), or None; checked before anything starts."""
    from edge_agent.metrics_endpoint import parse_address

    if not args.metrics:
        return None
    try:
        return parse_address(args.metrics)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def tasks(receiver, routing, address):
    """Coroutines to run beside the receiver: the webhook sender (if any
    route), the metrics' refresh (if --metrics)."""
    found = []
    if routing.routes.routes:
        from edge_agent.receiver.webhook_sender import WebhookSender

        sender = WebhookSender(receiver.storage, routing.routes)

        def wake(_messages, _seconds):
            if routing.queued:
                routing.queued = False
                sender.wake.set()

        receiver.on_commit.append(wake)
        found.append(sender.run())
    if address is not None:
        found.append(_metrics(receiver, address))
    return found


async def _metrics(receiver, address):
    from edge_agent.metrics_endpoint import serve
    from edge_agent.receiver.metrics import REFRESH_S, ReceiverMetrics

    metrics = ReceiverMetrics(receiver)
    metrics.refresh()
    server = serve(metrics.registry, address, "receiver")
    if server is None:
        return
    try:
        while True:
            await asyncio.sleep(REFRESH_S)
            metrics.refresh()
    finally:
        server.shutdown()


# --- receiver tickets / ack / outbox -----------------------------------------

def open_existing(db):
    """The storage of an existing --db (the receiver creates it on its
    first run), or a UsageError saying what is wrong."""
    from edge_agent.receiver.storage import StorageError, is_postgres_url, open_storage

    if not is_postgres_url(db) and not os.path.exists(db):
        raise UsageError("--db %s: no such database; the receiver creates it on its first run" % db)
    try:
        return open_storage(db)
    except StorageError as exc:
        raise UsageError(str(exc)) from None


def _when(ms):
    if ms is None:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def cmd_tickets(args):
    from edge_agent.receiver import tickets

    storage = open_existing(args.db)
    try:
        states = None if args.all else (tickets.OPEN, tickets.ACKNOWLEDGED, tickets.CLEARED)
        for t in tickets.tickets(storage, states=states, device=args.device, limit=args.limit):
            print("#%d %-12s %s %s/%s %s: %s%s" % (
                t["id"], t["state"], _when(t["opened_ms"]), t["device"], t["component"] or "-", t["condition"],
                t["text"] or "", " [ack %s %s]" % (t["acked_by"], _when(t["acked_ms"])) if t["acked_by"] else ""))
            if t["action"]:
                print("    action: %s" % t["action"])
    finally:
        storage.close()
    return EXIT_OK


def cmd_ack(args):
    from edge_agent.receiver import tickets

    storage = open_existing(args.db)
    try:
        # --routes: the acknowledgement's webhooks, queued for the running receiver's sender.
        acked = routing(args, storage, load_registry(args.registry) if args.registry else None) \
            if args.routes else None
        ticket = tickets.acknowledge(storage, args.ticket, args.who or getpass.getuser(), args.note,
                                     time.time_ns() // 1_000_000, routing=acked)
    except tickets.TicketError as exc:
        print("edge-agent: %s" % exc, file=sys.stderr)
        return EXIT_FAILED
    finally:
        storage.close()
    print("ticket #%d %s by %s" % (ticket["id"], ticket["state"], ticket["acked_by"]))
    return EXIT_OK


def cmd_outbox(args):
    from edge_agent.receiver import outbox

    storage = open_existing(args.db)
    try:
        if args.requeue is not None:
            storage.begin()
            done = outbox.requeue(storage, args.requeue, time.time_ns() // 1_000_000)
            storage.commit()
            print("outbox row %d %s" % (args.requeue, "queued again" if done else "is not a dead letter"))
            return EXIT_OK if done else EXIT_FAILED
        for row in outbox.rows(storage, state=None if args.state == "all" else args.state, limit=args.limit):
            print("%d %-9s %-12s %s %s #%d attempts %d%s" % (
                row["id"], row["state"], row["route"], row["event"], row["device"], row["seq"], row["attempts"],
                "  last error: %s" % row["last_error"] if row["last_error"] else ""))
    finally:
        storage.close()
    return EXIT_OK


def add_commands(receiver_sub):
    listing = receiver_sub.add_parser("tickets", help="tickets: unresolved (or --all), newest change first")
    listing.add_argument("--db", default="receiver.sqlite", metavar="FILE|URL")
    listing.add_argument("--all", action="store_true", help="resolved ones too")
    listing.add_argument("--device", help="one device's")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(func=cmd_tickets)
    ack = receiver_sub.add_parser("ack", help="acknowledge a ticket (audited: who, when, note)")
    ack.add_argument("--db", default="receiver.sqlite", metavar="FILE|URL")
    ack.add_argument("ticket", type=int, help="the ticket's number (receiver tickets)")
    ack.add_argument("--who", help="who acknowledges (default: the login name)")
    ack.add_argument("--note", default="", help="what is being done about it")
    ack.add_argument("--routes", metavar="FILE", help="the receiver's routes file: queue the webhooks of routes "
                     "that take acknowledgements (a tracker mirroring the ticket); the running receiver sends them")
    ack.add_argument("--registry", metavar="FILE", help="devices.toml, for routes that match devices' models")
    ack.set_defaults(func=cmd_ack)
    box = receiver_sub.add_parser("outbox", help="webhook deliveries: pending, delivered, dead letters")
    box.add_argument("--db", default="receiver.sqlite", metavar="FILE|URL")
    box.add_argument("--state", choices=("all", "pending", "delivered", "dead"), default="all")
    box.add_argument("--limit", type=int, default=100)
    box.add_argument("--requeue", type=int, metavar="ID", help="send a dead letter again")
    box.set_defaults(func=cmd_outbox)
