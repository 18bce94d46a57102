"""What the receiver does with each fresh alert besides storing it: open or
join its ticket (tickets.py) and queue a webhook for every route that
matches it (outbox.py), in the alert's own transaction; and the webhook
of a ticket someone acknowledged, in the acknowledgement's."""

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
        """A fresh alert was stored (inside the batch's transaction): its
        ticket is changed here, then its routes."""
        self._route(signal, received_ms, tickets.observe(self.storage, signal, received_ms))

    def observe_changed(self, signal, received_ms, row):
        """The same for an alert whose ticket the storage changed in the
        statement that stored it (storage.store_alerts returned ``row``)."""
        self._route(signal, received_ms, tickets.finish(self.storage, signal, row))

    def _route(self, signal, received_ms, ticket_id):
        if not self.routes.routes:
            return
        ticket = tickets.ticket(self.storage, ticket_id) if ticket_id is not None else None
        alert = webhooks.alert_fields(signal)
        event = "raised" if alert["active"] else "cleared"
        model = self._model(signal.device)
        values = {"severity": alert["severity"], "model": model, "device": signal.device,
                  "condition": alert["condition"], "component": alert["component"], "event": event}
        self._queue(values, "alert." + event, signal.device, signal.seq, model, alert, ticket, received_ms)

    def acknowledged(self, ticket, now_ms):
        """``ticket`` (tickets.acknowledge's, inside its transaction) was
        acknowledged: tell the routes that take "acknowledged"."""
        model = self._model(ticket["device"])
        values = {"severity": ticket["severity"], "model": model, "device": ticket["device"],
                  "condition": ticket["condition"], "component": ticket["component"], "event": "acknowledged"}
        self._queue(values, "ticket.acknowledged", ticket["device"], ticket["last_seq"], model, None, ticket, now_ms)

    def _queue(self, values, event, device, seq, model, alert, ticket, now_ms):
        for route in self.routes.matching(values):
            body = webhooks.payload(route.format, event, device, model, alert, webhooks.ticket_fields(ticket))
            outbox.enqueue(self.storage, route.name, event, device, seq, ticket["id"] if ticket else None, body,
                           now_ms)
            self.queued = True

    def _model(self, device):
        entry = self.registry.devices.get(device) if self.registry is not None else None
        return (entry.model or "") if entry is not None else ""
