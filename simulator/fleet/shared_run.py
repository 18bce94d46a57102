"""Repair runs with several receivers on one PostgreSQL (issue 20's
exactly-once proof, with the broker killed too): repair_run.py's fleet and
stock-like broker, but ``receivers`` processes of `edge-agent receiver run`
in one shared-subscription ``--group``, each with the repair key, all on
the database at ``db_url``. One more timeline event:

    ("receiver_kill", at_ms, for_ms)   receiver 0 killed (SIGKILL) mid-batch and
                                        started again after for_ms with the same
                                        client id (its session's queue comes back)

The broker's kill loses what it held (no persistence), and mosquitto 2.0.11
would not hand a `$share` session's queue back anyway (docs/receiver.md):
the devices' replay windows bring it back, the receivers deciding one
device at a time under PostgreSQL's advisory lock (receiver/repair.py).
Used by tests/receiver/test_shared_repair.py.
"""

import asyncio
import os

from .repair_run import RepairRun
from .run import _sleep_until, now_ms

VICTIM = 0  # the receiver the timeline kills


class SharedRepairRun(RepairRun):
    def __init__(self, spec, events, db_url, receivers=3, group="fleet-share", **kwargs):
        super().__init__(spec, events, **kwargs)
        self.db_url = db_url
        self.receiver_count = receivers
        self.group = group
        self.receivers = []
        self.receiver_kills = 0
        self.children = []  # every receiver process started, killed ones too (their logs)
        self.exited = []  # "name: code" of receivers that ended on their own (none should)

    def _setup(self):
        super()._setup()
        self.db_path = self.db_url  # what every read of the run's database opens

    def _start_receiver(self):
        self.receivers = [self._receiver_child(index) for index in range(self.receiver_count)]
        for child in self.receivers:
            child.wait_for("receiving", 30)
        self.receiver = self.receivers[VICTIM]

    def _receiver_child(self, index):
        from ..fixtures.processes import Child

        client_id = "%s-rx-%d" % (self.group, index)
        child = Child("receiver-%d" % index, self._receiver_argv(client_id, self.group), relay=False)
        self.children.append(child)
        return child

    def _restart_victim(self):
        self.receivers[VICTIM] = self.receiver = self._receiver_child(VICTIM)
        self.receiver.wait_for("receiving", 30)

    async def _event(self, action, at_ms, for_ms):
        if action != "receiver_kill":
            return await super()._event(action, at_ms, for_ms)
        loop = asyncio.get_running_loop()
        self.phase = "receiver killed"
        await loop.run_in_executor(self.broker_executor, self.receivers[VICTIM].kill)
        self.receiver_kills += 1
        await _sleep_until(self.t0_ms + at_ms + for_ms)
        # From the broker's control thread, as repair_run.py restarts its receiver.
        await loop.run_in_executor(self.broker_executor, self._restart_victim)
        self.receiver_up_ms.append(now_ms())

    def _stop(self):
        self.exited = ["%s: exit %s" % (child.name, child.process.returncode) for child in self.receivers
                       if child.process.poll() is not None]
        for child in self.receivers:
            child.stop()
        for number, child in enumerate(self.children):
            with open(os.path.join(self.workdir, "%s.%d.log" % (child.name, number)), "w") as f:
                f.write(child.text() + "\n")
        self.result.receiver_tail = "\n".join("%s: %s" % (child.name, line) for child in self.receivers
                                              for line in child.lines[-8:])
        self.receiver = None  # stopped above
        super()._stop()
