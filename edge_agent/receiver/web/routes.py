"""The web view's pages, one handler each: the fleet, a device, the alerts
(with fleet incidents and tickets), acknowledging a ticket, the live feed,
logging in and out."""

import asyncio

from aiohttp import web

from edge_agent.receiver import tickets
from edge_agent.receiver.web import access as acc
from edge_agent.receiver.web import chart, pages, queries, series
from edge_agent.receiver.web.live import KEEPALIVE_S
from edge_agent.receiver.web.state import ACCESS, BUNDLES, FEED, READER, ROUTING, access_level

# The query string is input: bounded before it is used.
MAX_QUERY_CHARS = 200
UNRESOLVED = (tickets.OPEN, tickets.ACKNOWLEDGED, tickets.CLEARED)
# Who acknowledged, as audited: the name typed in, and where (tickets.MAX_WHO bounds the whole).
WEB_SUFFIX = " (web view)"
MAX_WHO_CHARS = tickets.MAX_WHO - len(WEB_SUFFIX)


def html(body):
    return web.Response(text=body, content_type="text/html")


def _param(request, name, default=""):
    return request.query.get(name, default)[:MAX_QUERY_CHARS]


async def fleet(request):
    rows = await request.app[READER].run(queries.fleet)
    q, show = _param(request, "q"), _param(request, "show")
    sort_key, descending = _param(request, "sort", "device"), _param(request, "desc") == "1"
    shown = pages.sort_fleet(pages.filter_fleet(rows, q, show), sort_key, descending)
    return html(pages.page("fleet", pages.fleet(shown, len(rows), q, show, sort_key, descending), "fleet"))


def device_data(storage, device, window, cache):
    """What the device page shows (on the reader's thread), or None for an unknown device."""
    history = queries.History(storage, device)
    info = queries.device_info(storage, device, history.birth)
    if info is None:
        return None
    span = queries.time_span(storage, device) or (0, 1)
    length = dict(pages.WINDOWS).get(window)
    start_ms, end_ms = (span[1] - length, span[1]) if length else span
    end_ms = max(end_ms, start_ms + 1)
    charts = series.chart_series(storage, cache, device, history.bundles, start_ms, end_ms, chart.WIDTH)
    return (info, (start_ms, end_ms), {sensor: (c.readings, c.points()) for sensor, c in charts.items()},
            history.alerts, history.states, history.audit, tickets.tickets(storage, device=device, limit=50))


async def device(request):
    device_id = request.match_info["device"]
    window = _param(request, "window", "all")
    if window not in dict(pages.WINDOWS):
        raise web.HTTPBadRequest(text="window=%s: use one of %s\n" % (
            pages.text(window, 40), ", ".join(name for name, _ in pages.WINDOWS)))
    data = await request.app[READER].run(device_data, device_id, window, request.app[BUNDLES])
    if data is None:
        raise web.HTTPNotFound(text="no device %s in this receiver's database\n" % pages.text(device_id, 80))
    info, span, charts, alerts, timeline, audit, device_tickets = data
    body = pages.device_page(device_id, info, window, span, charts, alerts, timeline, audit, device_tickets,
                             access_level(request) == acc.WRITE)
    return html(pages.page("device " + device_id, body, "device"))


async def alerts(request):
    rows = await request.app[READER].run(queries.alerts)
    incidents = await request.app[READER].run(queries.incidents)
    unresolved = await request.app[READER].run(tickets.tickets, UNRESOLVED, None, 200)
    body = pages.alerts_page(rows, incidents, unresolved, access_level(request) == acc.WRITE)
    return html(pages.page("alerts", body, "alerts"))


async def acknowledge(request):
    """POST /tickets/ID/ack (who, note): the write token only; audited by
    tickets.acknowledge (who, when, note) as "NAME (web view)", and with
    --routes its webhooks queued in the same transaction."""
    if access_level(request) != acc.WRITE:
        raise web.HTTPForbidden(text="acknowledging a ticket needs the write token (--http-write-token-file)\n")
    # The cookie is SameSite=Strict already; a form posted from another origin is refused too.
    origin = request.headers.get("Origin")
    if origin is not None and origin != "%s://%s" % (request.scheme, request.host):
        raise web.HTTPForbidden(text="a form from another site (Origin %s) may not acknowledge\n"
                                     % pages.text(origin, 100))
    try:
        ticket_id = int(request.match_info["ticket"])
    except ValueError:
        raise web.HTTPNotFound(text="no such ticket\n") from None
    form = await request.post()
    who = str(form.get("who", "")).strip()
    if not who:
        raise web.HTTPBadRequest(text="who: the name of the person acknowledging is required\n")
    try:
        await request.app[READER].run(tickets.acknowledge, ticket_id, who[:MAX_WHO_CHARS] + WEB_SUFFIX,
                                      str(form.get("note", "")), queries.now_ms(), request.app[ROUTING])
    except tickets.TicketError as exc:
        raise web.HTTPConflict(text="%s\n" % exc) from None
    except request.app[READER].storage.FATAL_ERRORS as exc:
        # e.g. SQLite's "database is locked" while a receiver writes: nothing changed
        raise web.HTTPServiceUnavailable(text="the database is busy, nothing was acknowledged; try again (%s)\n"
                                              % " ".join(str(exc).split())) from None
    raise web.HTTPSeeOther("/alerts#ticket-%d" % ticket_id)


async def events(request):
    """Server-sent events: one ``alert`` event per new alert."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    response.headers.update({"Content-Security-Policy": "default-src 'none'"})
    await response.prepare(request)
    feed = request.app[FEED]
    queue = feed.subscribe()
    try:
        await response.write(b": live\n\n")
        while True:
            try:
                message = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except asyncio.TimeoutError:
                message = ": keepalive\n\n"
            if message is None:  # the server is stopping
                break
            await response.write(message.encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        feed.unsubscribe(queue)
    return response


async def login_form(request):
    return html(pages.login("Enter the access token you were given."))


async def login(request):
    form = await request.post()
    token = str(form.get("token", ""))[:1024]
    if request.app[ACCESS].level(token) is None:
        return web.Response(status=401, text=pages.login("That token is not valid here."), content_type="text/html")
    response = web.HTTPSeeOther("/")
    # HttpOnly: no script reads it; Strict: no other site's page sends it.
    response.set_cookie(acc.COOKIE, token, httponly=True, samesite="Strict", secure=request.secure, path="/")
    raise response


async def logout(request):
    response = web.HTTPSeeOther("/login")
    response.del_cookie(acc.COOKIE, path="/")
    raise response


def add(app):
    app.router.add_get("/", fleet)
    app.router.add_get("/device/{device}", device)
    app.router.add_get("/alerts", alerts)
    app.router.add_get("/events", events)
    app.router.add_post("/tickets/{ticket}/ack", acknowledge)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_get("/logout", logout)
