"""What the web view's handlers find on the application (aiohttp app keys)."""

from aiohttp import web

from edge_agent.receiver.web.access import Access
from edge_agent.receiver.web.live import LiveFeed
from edge_agent.receiver.web.series import BundleCache

ACCESS = web.AppKey("access", Access)
READER = web.AppKey("reader", object)  # app.Reader: the storage on its own thread
FEED = web.AppKey("feed", LiveFeed)
BUNDLES = web.AppKey("bundles", BundleCache)  # used on the reader's thread only
