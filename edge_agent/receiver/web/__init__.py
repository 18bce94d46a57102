"""The fleet web view (docs/operator-view.md): the receiver's database as
pages a person reads: the fleet, each device's charts, states and audit
trail, the alerts and fleet incidents, live by server-sent events.

access.py: who may read and write; queries.py: the read queries; chart.py:
downsampled SVG charts; pages.py and templates/: the HTML; live.py: the
live feed; routes.py: the handlers; app.py: the aiohttp application."""
