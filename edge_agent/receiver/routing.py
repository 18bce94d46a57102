"""What the receiver does with each fresh alert besides storing it: open or
join its ticket (tickets.py) and queue a webhook for every route that
matches it (outbox.py), in the alert's own transaction."""

from edge_agent.receiver import outbox, tickets, webhooks
from edge_agent.receiver.routes import Routes


class AlertRouting:
    def __init__(self, storage, routes=None, registry=None):
        """``routes``: routes.Routes from --routes (None: tickets only);
        ``registry``: for devices' models (route rules by model)."""
        self.storage = storage
        self.routes = routes if routes is not None else Routes()
        self.registry = registry
        self.queued = False  # set when a delivery was queued: wakes the sender

    def observe(self, signal, received_ms):
        """A fresh alert was stored (inside the batch's transaction)."""
        ticket = tickets.observe(self.storage, signal, received_ms)
        if not self.routes.routes:
            return
        alert = webhooks.alert_fields(signal)
        event = "raised" if alert["active"] else "cleared"
        model = self._model(signal.device)
        values = {"severity": alert["severity"], "model": model, "device": signal.device,
                  "condition": alert["condition"], "component": alert["component"], "event": event}
        for route in self.routes.matching(values):
            body = webhooks.payload(route.format, "alert." + event, signal.device, model, alert,
                                    webhooks.ticket_fields(ticket))
            outbox.enqueue(self.storage, route.name, "alert." + event, signal.device, signal.seq,
                           ticket["id"] if ticket else None, body, received_ms)
            self.queued = True

    def _model(self, device):
        entry = self.registry.devices.get(device) if self.registry is not None else None
        return (entry.model or "") if entry is not None else ""
