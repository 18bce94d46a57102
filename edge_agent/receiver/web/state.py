"""What the web view's handlers find on the application (aiohttp app keys)."""

from aiohttp import web

from edge_agent.receiver.web.access import Access
from edge_agent.receiver.web.live import LiveFeed

ACCESS = web.AppKey("access", Access)
READER = web.AppKey("reader", object)  # app.Reader: the storage on its own thread
FEED = web.AppKey("feed", LiveFeed)
