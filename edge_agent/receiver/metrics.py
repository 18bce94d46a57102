"""The receiver's Prometheus metrics (docs/operator-view.md, "Metrics"),
with prometheus_client, on a registry of its own.

What this process counted (signals stored per kind, duplicates, rejections
per reason) comes from the Receiver's counters; what the database holds
(devices online, missing seqs, tickets, the outbox's depth) from queries.
Both are read on the receiver's event loop between batches (never from the
HTTP server's thread, which must not touch the database connection), so a
scrape sees committed numbers only: the counters after each commit, the
queries every REFRESH_S (refresh()). The ingest latency histogram is
observed after each commit: from the batch's start to its commit, per
message.
"""

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from edge_agent.core import signals as sg
from edge_agent.receiver import outbox, repair, tickets

# How often refresh() runs while the receiver is up.
REFRESH_S = 5.0
# Latency buckets (seconds): one commit's fsync is ~1-10 ms here, a batch of
# 200 messages tens of ms; a slow disk or a PostgreSQL far away, seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ReceiverMetrics:
    def __init__(self, receiver):
        self.receiver = receiver
        self.registry = CollectorRegistry()
        self.snapshot = {}
        self.counters = {}
        self.latency = Histogram("edge_agent_receiver_ingest_seconds",
                                 "Time from handling a message to its commit (batch start to COMMIT)",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(self)
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
        receiver.on_commit.append(self._committed)

    def _committed(self, messages, seconds):
        for _ in range(messages):
            self.latency.observe(seconds)
        self._take_counters()

    def _take_counters(self):
        receiver = self.receiver
        self.counters = {"stored": dict(receiver.stored_by_kind), "duplicates": receiver.duplicates,
                         "rejected": dict(receiver.rejected), "connected": receiver.connected.is_set()}

    def refresh(self):
        """Take the numbers a scrape shows (on the event loop)."""
        storage = self.receiver.storage
        summary = storage.device_summary()
        self._take_counters()
        self.snapshot = {
            "devices": len(summary), "online": sum(1 for row in summary if row[8] == "yes"),
            "missing": sum(row[3] for row in summary),
            "tickets": dict(storage.query("SELECT state, COUNT(*) FROM tickets WHERE resolved_ms IS NULL "
                                          "GROUP BY state")),
            "outbox": outbox.depth(storage),
            "repair": repair.counts(storage),
        }

    def collect(self):
        if not self.snapshot:
            return
        s = dict(self.snapshot, **self.counters)
        stored = CounterMetricFamily("edge_agent_receiver_signals_stored", "Fresh signals stored by this process",
                                     labels=["kind"])
        for kind, count in sorted(s["stored"].items()):
            stored.add_metric([sg.KIND_NAMES.get(kind, str(kind))], count)
        yield stored
        yield CounterMetricFamily("edge_agent_receiver_duplicates", "Verified signals dropped as already stored",
                                  value=s["duplicates"])
        rejected = CounterMetricFamily("edge_agent_receiver_rejections", "Messages rejected by this process",
                                       labels=["reason"])
        for reason, count in sorted(s["rejected"].items()):
            rejected.add_metric([reason], count)
        yield rejected
        yield GaugeMetricFamily("edge_agent_receiver_broker_connected", "1 while subscribed to the broker",
                                value=1 if s["connected"] else 0)
        yield GaugeMetricFamily("edge_agent_receiver_devices", "Devices in the database", value=s["devices"])
        yield GaugeMetricFamily("edge_agent_receiver_devices_online",
                                "Devices whose last status said online, confirmed by a signal since",
                                value=s["online"])
        yield GaugeMetricFamily("edge_agent_receiver_missing_signals",
                                "Seqs missing below each device's highest (gaps; restart skips excluded)",
                                value=s["missing"])
        open_tickets = GaugeMetricFamily("edge_agent_receiver_tickets", "Unresolved tickets", labels=["state"])
        for state in tickets.STATES[:-1]:
            open_tickets.add_metric([state], s["tickets"].get(state, 0))
        yield open_tickets
        depth = GaugeMetricFamily("edge_agent_receiver_outbox_rows", "Webhook outbox rows", labels=["route", "state"])
        for route, states in sorted(s["outbox"].items()):
            for state in (outbox.PENDING, outbox.DELIVERED, outbox.DEAD):
                depth.add_metric([route, state], states.get(state, 0))
        yield depth
        seqs = GaugeMetricFamily("edge_agent_receiver_repair_seqs", "Seqs in gap repair: repaired, pending, lost "
                                 "for good (device answered gone)", labels=["state"])
        requests = GaugeMetricFamily("edge_agent_receiver_repair_requests", "Replay requests: sent (PUBACK), "
                                     "answered, refused by the device", labels=["outcome"])
        for state in (repair.REPAIRED, repair.PENDING, repair.LOST):
            seqs.add_metric([state], s["repair"][state])
        for outcome in ("sent", "answered", "refused"):
            requests.add_metric([outcome], s["repair"]["requests_" + outcome])
        yield seqs
        yield requests
