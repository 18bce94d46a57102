"""docs/wire-format.md's table of raised alerts (priority and severity per
condition) against what the device really raises in the health runs:
quarantined at 2 (the documented exception), degraded at 0, needs_service
at 1, and every other raise at the priority of its severity."""

import os
import re

from edge_agent.core import signals as sg
from simulator import ROOT
from test_wire_schema import _health_signals


def _doc_rows():
    """{condition: (priority cell, severity cell)}; key None: "a rule kind"."""
    text = open(os.path.join(ROOT, "docs", "wire-format.md")).read()
    table = text[text.index("| raised alert | priority | severity |"):].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines()[2:]:
        what, priority, severity = [cell.strip() for cell in line.strip("|").split("|")]
        for condition in re.findall(r"`(\w+)`", what) + ([None] if "a rule kind" in what else []):
            rows[condition] = (priority, severity)
    return rows


def _check(rows, signal):
    condition = signal.body[sg.A_CONDITION]
    priority_cell, severity_cell = rows.get(condition) or rows[None]
    severity = signal.body[sg.A_SEVERITY]
    if priority_cell.startswith("by severity:"):
        by_severity = {name: int(p) for name, p in re.findall(r"(\w+) (\d)", priority_cell)}
        assert signal.priority == by_severity[severity], (condition, signal.priority, severity)
    else:
        assert (signal.priority, severity) == (int(priority_cell), severity_cell), condition


def test_every_raised_alert_has_the_documented_priority_and_severity():
    rows = _doc_rows()
    assert rows["quarantined"] == ("2", "warning")
    seen = set()
    for signal in _health_signals():
        if signal.kind == sg.KIND_ALERT and signal.body[sg.A_ACTIVE]:
            _check(rows, signal)
            seen.add(signal.body[sg.A_CONDITION])
    for condition in ("quarantined", "degraded", "needs_service", "root_cause", "predicted_failure", "stuck",
                      "out_of_range"):
        assert condition in seen, condition
