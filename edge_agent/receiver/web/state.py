"""What the web view's handlers find on the application (aiohttp app
keys), and what a request may do (its token or client certificate)."""

from aiohttp import web

from edge_agent.receiver.web.access import COOKIE, Access
from edge_agent.receiver.web.live import LiveFeed
from edge_agent.receiver.web.series import BundleCache

ACCESS = web.AppKey("access", Access)
READER = web.AppKey("reader", object)  # app.Reader: the storage on its own thread
FEED = web.AppKey("feed", LiveFeed)
BUNDLES = web.AppKey("bundles", BundleCache)  # used on the reader's thread only
ROUTING = web.AppKey("routing", object)  # routing.AlertRouting for acknowledgements' webhooks, or None


def presented_token(request):
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.cookies.get(COOKIE)


def access_level(request):
    """READ, WRITE or None: what the request's token or client certificate allows."""
    peercert = request.transport.get_extra_info("peercert") if request.transport else None
    return request.app[ACCESS].level(presented_token(request), peercert)
