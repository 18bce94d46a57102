"""The agent's Prometheus metrics (`run --metrics`, agent.toml [metrics]
address; docs/operator-view.md, "Metrics"), with prometheus_client on a
registry of its own, served by metrics_endpoint.py.

Everything shown is what the agent already counts: the store's lanes
(lane_info: unacknowledged records and bytes), its evictions and drops
(evicted_by_lane, stats), the core's bad frames by reason
(Device.bad_by_reason) and frame/reading counts, the uplink's session and
its last PUBACK, the health engine's component states. A snapshot is taken
on the agent's event loop every REFRESH_S (the store and the core are not
thread-safe; the HTTP server answers from its own thread), so a scrape
never touches them.
"""

import asyncio
import time

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from edge_agent.core import component as cp
from edge_agent.metrics_endpoint import serve

REFRESH_S = 2.0


class AgentMetrics:
    def __init__(self, agent, address):
        self.agent = agent
        self.address = address
        self.registry = CollectorRegistry()
        self.snapshot = {}
        self.registry.register(self)
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, process_resident_memory_bytes, ...

    def refresh(self):
        agent = self.agent
        store, device, uplink = agent.store, agent.device, agent.uplink
        lanes = [store.lane_info(lane) for lane in range(store.lanes)]
        acked = uplink.last_puback_monotonic
        self.snapshot = {
            "records": [info[0] for info in lanes], "bytes": [info[1] for info in lanes],
            "evicted": list(store.evicted_by_lane), "dropped": store.stats["dropped"],
            "bad": dict(device.bad_by_reason), "frames": device.stats["frames"], "readings": device.stats["readings"],
            "connected": uplink.online.is_set(), "published": uplink.published,
            "puback_age": None if acked is None else time.monotonic() - acked,
            "states": device.component_states(),
        }

    async def run(self):
        """Serve until cancelled (an agent service: Agent.services)."""
        self.refresh()
        server = serve(self.registry, self.address, "agent")
        if server is None:
            return
        try:
            while True:
                await asyncio.sleep(REFRESH_S)
                self.refresh()
        finally:
            server.shutdown()

    def collect(self):
        s = self.snapshot
        if not s:
            return
        records = GaugeMetricFamily("edge_agent_store_records", "Records stored and not yet acknowledged",
                                    labels=["lane"])
        size = GaugeMetricFamily("edge_agent_store_bytes", "Bytes of the lane's segments", labels=["lane"])
        evicted = CounterMetricFamily("edge_agent_store_evicted_records", "Unsent records evicted to make room",
                                      labels=["lane"])
        for lane, count in enumerate(s["records"]):
            records.add_metric([str(lane)], count)
            size.add_metric([str(lane)], s["bytes"][lane])
            evicted.add_metric([str(lane)], s["evicted"][lane])
        yield records
        yield size
        yield evicted
        yield CounterMetricFamily("edge_agent_store_dropped_records",
                                  "Records dropped: the store was full of more urgent data", value=s["dropped"])
        bad = CounterMetricFamily("edge_agent_bad_frames", "Serial frames refused, by reason", labels=["reason"])
        for reason, count in sorted(s["bad"].items()):
            bad.add_metric([reason], count)
        yield bad
        yield CounterMetricFamily("edge_agent_frames", "Serial frames decoded", value=s["frames"])
        yield CounterMetricFamily("edge_agent_readings", "Sensor readings taken", value=s["readings"])
        yield GaugeMetricFamily("edge_agent_uplink_connected", "1 while connected to the broker",
                                value=1 if s["connected"] else 0)
        yield CounterMetricFamily("edge_agent_uplink_signals_published", "Signals the broker acknowledged (PUBACK)",
                                  value=s["published"])
        yield GaugeMetricFamily("edge_agent_uplink_last_puback_age_seconds",
                                "Seconds since the broker's last PUBACK (NaN: none since start)",
                                value=float("nan") if s["puback_age"] is None else s["puback_age"])
        states = GaugeMetricFamily("edge_agent_component_state",
                                   "1 for each component's current health state (docs/health.md)",
                                   labels=["component", "state"])
        for component, current in sorted(s["states"].items()):
            for state in cp.STATES:
                states.add_metric([component, state], 1 if state == current else 0)
        yield states


def attach(agent, address):
    """Serve the agent's metrics at ``address`` ((host, port)) while it runs."""
    agent.services.append(AgentMetrics(agent, address))
