"""What a scenario run tells people and CI: the console lines, JUnit XML,
and a PNG with everything on one virtual-time axis.

The PNG (matplotlib, Agg: no display needed), top to bottom:
readings of each sensor (fault windows shaded, fault reports as red
ticks, quarantine cut-offs visible as gaps), the component states as a
step timeline (one band per component, coloured by state), the alerts the
receiver got (markers by priority; hollow for clears, with a legend), and
the store's unacknowledged depth with the link's down windows and power-off
windows. A predicted sensor's panel also marks its limit, the model's first
reading past it (a red x: when the part really fails), each prediction's
interval (a bar from the earliest to the latest plausible crossing, a dot at
the expected one, drawn from the alert's time) and the lead time from the
first prediction to the crossing.
"""

import os
import xml.etree.ElementTree as ET

from rich.markup import escape

from edge_agent.core import signals as sg
from ..hardware import physics
from .spec import exactly, format_duration

MAX_SENSOR_PANELS = 6
MAX_POINTS = 20000

STATE_COLOURS = {
    "ok": "#8fd18f", "suspect": "#f3d36b", "failed": "#e8743b", "quarantined": "#d9534f", "probing": "#9ab6e0",
    "degraded": "#b07cc6", "service": "#6b1f1f", "forced": "#555555",
}
PRIORITY_COLOURS = {0: "#c0392b", 1: "#e67e22", 2: "#2e86c1", 3: "#7f8c8d"}
PRIORITY_NAMES = {0: "critical", 1: "high", 2: "normal", 3: "low"}


def print_result(result, console, quiet=False):
    spec = result.spec
    if not quiet:
        console.print("[bold]%s[/] (%s, seed %d): %s simulated in %.2f s wall, %.0fx; %d readings, %d signals, "
                      "%d messages" % (spec.name, os.path.relpath(spec.path), result.seed,
                                       format_duration(spec.duration_ms), result.wall_s, result.speed,
                                       result.readings_count, len(result.issued), result.messages))
    elif not result.passed:  # which run failed (a [matrix] file has several)
        console.print("[bold]%s[/] (%s, seed %d):" % (spec.name, os.path.relpath(spec.path), result.seed))
    for o in result.outcomes:
        if o.passed and quiet:
            continue
        mark = "[green]PASS[/]" if o.passed else "[bold red]FAIL[/]"
        console.print("  %s %s: %s" % (mark, escape(o.name), escape(o.evidence)), soft_wrap=True)
    for note in result.notes:
        console.print("  [yellow]note[/] %s" % escape(note))
    if not quiet:
        console.print("  signal log sha256 %s" % result.digest)


def write_junit(results, path):
    """One <testsuite> per scenario, one <testcase> per expectation."""
    root = ET.Element("testsuites", name="edge-agent scenarios",
                      tests=str(sum(len(r.outcomes) for r in results)),
                      failures=str(sum(1 for r in results for o in r.outcomes if not o.passed)))
    for r in results:
        failures = [o for o in r.outcomes if not o.passed]
        suite = ET.SubElement(root, "testsuite", name=r.spec.stem, tests=str(len(r.outcomes)),
                              failures=str(len(failures)), errors="0", time="%.3f" % r.wall_s)
        props = ET.SubElement(suite, "properties")
        for k, v in (("seed", r.seed), ("simulated_s", r.spec.duration_ms / 1000.0), ("speedup", "%.0f" % r.speed),
                     ("signal_log_sha256", r.digest), ("file", r.spec.path), ("name", r.spec.name)):
            ET.SubElement(props, "property", name=k, value=str(v))
        for o in r.outcomes:
            case = ET.SubElement(suite, "testcase", classname="scenario." + r.spec.stem, name=o.name,
                                 time="%.3f" % (r.wall_s / max(1, len(r.outcomes))))
            if o.passed:
                ET.SubElement(case, "system-out").text = o.evidence
            else:
                failure = ET.SubElement(case, "failure", message=o.evidence[:300], type=o.kind)
                failure.text = "%s (%s in %s)\n%s" % (o.name, o.key, r.spec.path, o.evidence)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)


def _sensor_order(result):
    spec = result.spec
    named = []
    for f in spec.faults:
        named.extend(f.sensors)
    for e in spec.expects:
        if e.args.get("sensor"):
            named.append(e.args["sensor"])
    for component in [e.args.get("component") for e in spec.expects if e.args.get("component")]:
        named.extend(sorted(s.id for s in spec.board.sensors.values() if s.component == component))
    order = []
    for sid in named + sorted(result.readings):
        if sid in result.readings and sid not in order:
            order.append(sid)
    return order


def prediction_marks(result, sensor_id, limit):
    """What the report draws on a predicted sensor's panel: the model's
    first reading past ``limit`` (or None), each predicted_failure alert's
    (alert time, earliest, expected, latest or None) for this sensor, and
    the lead from the first one to the crossing (or None)."""
    from . import expect as scenario_expect

    sensor = result.spec.board.sensors[sensor_id]
    cross = None
    if sensor_id in result.models:
        cross = scenario_expect.crossing(result, sensor_id, limit, scenario_expect.predicted_below(sensor))
    predictions = []
    for s in result.delivered:
        if s.kind != sg.KIND_ALERT or s.body.get(sg.A_SENSOR) != sensor_id or not s.body.get(sg.A_ACTIVE):
            continue
        p = s.body.get(sg.A_PREDICTION)
        if not isinstance(p, dict) or p.get(sg.P_CROSSING) is None:
            continue
        predictions.append((s.time_ms, p.get(sg.P_EARLIEST), p.get(sg.P_CROSSING), p.get(sg.P_LATEST)))
    lead = cross - predictions[0][0] if cross is not None and predictions else None
    return cross, predictions, lead


MAX_PREDICTIONS_DRAWN = 12


def _mark_prediction(ax, result, sensor_id, limit, x):
    cross, predictions, lead = prediction_marks(result, sensor_id, limit)
    low, high = ax.get_ylim()
    low, high = min(low, limit), max(high, limit)
    lane = (high - low) * 0.035
    shown = predictions[:MAX_PREDICTIONS_DRAWN]
    for k, (when, earliest, expected, latest) in enumerate(shown):
        y = limit - lane * (k + 1)
        stop = latest if latest is not None else max(result.end_ms, expected)  # no latest: maybe never
        ax.plot([x(earliest if earliest is not None else expected), x(stop)], [y, y], lw=2.2, color="#e67e22",
                alpha=0.55, solid_capstyle="butt", label="prediction interval" if k == 0 else None)
        ax.plot([x(expected)], [y], "o", color="#a04000", ms=3, label="expected crossing" if k == 0 else None)
        ax.plot([x(when)], [y], "|", color="#a04000", ms=6)
    if cross is not None and cross <= result.end_ms:
        ax.plot([x(cross)], [limit], "x", color="#c0392b", ms=8, mew=2, label="first reading past the limit")
    if lead is not None:
        first = predictions[0][0]
        y = limit + lane * 1.5
        ax.annotate("", xy=(x(cross), y), xytext=(x(first), y),
                    arrowprops={"arrowstyle": "<->", "color": "#196f3d", "lw": 1.0})
        ax.text((x(first) + x(min(cross, result.end_ms))) / 2, y + lane * 0.4, "lead %s" % exactly(lead),
                ha="center", va="bottom", fontsize=7, color="#196f3d")
    if len(predictions) > len(shown):
        ax.text(1.0, 0.02, "%d more predictions not drawn" % (len(predictions) - len(shown)),
                transform=ax.transAxes, ha="right", fontsize=6)
    if shown or cross is not None:
        ax.set_ylim(min(low, limit - lane * (len(shown) + 1.5)), max(high, limit + lane * 4))
        ax.legend(fontsize=6, loc="upper left", frameon=False, ncol=3)


def write_png(result, path, dpi=80):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    spec = result.spec
    span = result.end_ms - result.start_ms
    unit_ms, unit = (physics.DAY_MS, "days") if span > 2 * physics.DAY_MS else (
        (physics.HOUR_MS, "hours") if span > 3 * physics.HOUR_MS else (60000, "minutes"))

    def x(ms):
        return (ms - result.start_ms) / unit_ms

    sensors = _sensor_order(result)
    shown = sensors[:MAX_SENSOR_PANELS]
    components = sorted(spec.board.components)
    heights = [1.4] * len(shown) + [max(1.0, 0.28 * len(components)), 1.0, 1.1]
    fig, axes = plt.subplots(len(heights), 1, sharex=True, figsize=(11, 1.0 + sum(heights) * 1.05),
                             gridspec_kw={"height_ratios": heights})
    fig.suptitle("%s  (seed %d, %s simulated, %s)" % (spec.name, result.seed, format_duration(span),
                                                       "PASS" if result.passed else "FAIL"),
                 fontsize=11, color="black" if result.passed else "#b00000")
    fault_windows = []
    for f in spec.faults:
        start = result.start_ms + f.at_ms
        stop = result.start_ms + f.end_ms if f.end_ms is not None else (start if f.kind in ("power_cut", "force", "release", "spike") else result.end_ms)
        fault_windows.append((start, stop, f))

    for ax, sid in zip(axes, shown):
        times, values = result.readings[sid]
        step = max(1, len(times) // MAX_POINTS)
        period = spec.board.sensors[sid].period_ms
        xs, ys = [], []
        prev = None
        for tm, v in zip(times[::step], values[::step]):
            if prev is not None and tm - prev > 2.5 * period * step:
                xs.append(x(prev + period))  # a gap (unpowered, dropout, power off): no line across it
                ys.append(float("nan"))
            xs.append(x(tm))
            ys.append(v if v is not None else float("nan"))
            prev = tm
        ax.plot(xs, ys, lw=0.6, color="#1f4e79")
        faults = [x(tm) for tm, v in zip(times, values) if v is None]
        if faults:
            lo = min((v for v in values if v is not None), default=0.0)
            ax.plot(faults[::max(1, len(faults) // 2000)], [lo] * len(faults[::max(1, len(faults) // 2000)]),
                    "|", color="#c0392b", ms=6, label="fault report")
        sensor = spec.board.sensors[sid]
        ax.set_ylabel("%s\n(%s)" % (sid, sensor.unit), fontsize=8)
        if sensor.predict is not None:
            limit = sensor.predict.above if sensor.predict.above is not None else sensor.predict.below
            ax.axhline(limit, color="#c0392b", lw=0.8, ls="--")
            _mark_prediction(ax, result, sid, limit, x)
        for start, stop, f in fault_windows:
            if sid in f.sensors:
                if stop > start:
                    ax.axvspan(x(start), x(stop), color="#f5b7b1", alpha=0.5, lw=0)
                ax.annotate(f.kind, (x(start), 1.0), xycoords=("data", "axes fraction"), fontsize=7,
                            va="top", color="#922b21")
        ax.tick_params(labelsize=7)
    if len(sensors) > len(shown):
        axes[len(shown) - 1].text(1.0, -0.25, "%d more sensors not shown" % (len(sensors) - len(shown)),
                                  transform=axes[len(shown) - 1].transAxes, ha="right", fontsize=7)

    # Component states: a band per component.
    ax = axes[len(shown)]
    for row, comp in enumerate(components):
        changes = [(tm, to) for tm, c, _, to in result.transitions if c == comp]
        edges = [(result.start_ms, "ok")] + changes
        for boot, _ in result.boots[1:]:
            edges.append((boot, "ok"))
        edges.sort(key=lambda e: e[0])
        for i, (tm, state) in enumerate(edges):
            stop = edges[i + 1][0] if i + 1 < len(edges) else result.end_ms
            ax.broken_barh([(x(tm), max(x(stop) - x(tm), 0))], (row - 0.4, 0.8), color=STATE_COLOURS.get(state, "#ccc"))
    for start, stop in result.power_off:
        ax.axvspan(x(start), x(stop), color="black", alpha=0.25, lw=0)
    ax.set_yticks(range(len(components)))
    ax.set_yticklabels(components, fontsize=7)
    ax.set_ylim(-0.6, len(components) - 0.4)
    used = sorted({to for _, _, _, to in result.transitions} | {"ok"}, key=list(STATE_COLOURS).index)
    ax.legend(handles=[Patch(color=STATE_COLOURS[s], label=s) for s in used], fontsize=6, ncol=len(used),
              loc="upper left", bbox_to_anchor=(0, 1.32), frameon=False)
    ax.tick_params(labelsize=7)

    # Alerts at the receiver.
    ax = axes[len(shown) + 1]
    conditions = []
    for s in result.delivered:
        if s.kind == sg.KIND_ALERT and s.body.get(sg.A_CONDITION) not in conditions:
            conditions.append(s.body.get(sg.A_CONDITION))
    for s in result.delivered:
        if s.kind != sg.KIND_ALERT:
            continue
        row = conditions.index(s.body.get(sg.A_CONDITION))
        colour = PRIORITY_COLOURS.get(s.priority, "black")
        active = bool(s.body.get(sg.A_ACTIVE))
        ax.plot([x(s.time_ms)], [row], "v" if active else "o", color=colour, ms=6 if active else 4,
                mfc=colour if active else "none")
    from matplotlib.lines import Line2D
    ax.set_yticks(range(len(conditions)))
    ax.set_yticklabels(conditions, fontsize=7)
    ax.set_ylim(-0.7, max(len(conditions), 1) - 0.3)
    ax.set_ylabel("alerts", fontsize=8)
    ax.legend(handles=[Patch(color=PRIORITY_COLOURS[p], label=PRIORITY_NAMES[p]) for p in (0, 1, 2)]
              + [Line2D([], [], ls="", marker="v", color="#555555", ms=5, label="raised"),
                 Line2D([], [], ls="", marker="o", color="#555555", mfc="none", ms=4, label="cleared (hollow)")],
              fontsize=6, ncol=5, loc="upper left", bbox_to_anchor=(0, 1.3), frameon=False)
    ax.tick_params(labelsize=7)

    # Store depth, link and power.
    ax = axes[-1]
    if result.depth:
        xs, ys = [], []
        for tm, depth in result.depth:
            if xs:
                xs.append(x(tm))
                ys.append(ys[-1])
            xs.append(x(tm))
            ys.append(depth)
        xs.append(x(result.end_ms))
        ys.append(ys[-1])
        step = max(1, len(xs) // MAX_POINTS)
        ax.plot(xs[::step], ys[::step], lw=0.8, color="#34495e")
    for start, stop in result.link_down:
        ax.axvspan(x(start), x(stop), color="#f39c12", alpha=0.3, lw=0)
    for start, stop in result.power_off:
        ax.axvspan(x(start), x(stop), color="black", alpha=0.3, lw=0)
    for start, stop in result.disk_full:
        ax.axvspan(x(start), x(stop), color="#8e44ad", alpha=0.25, lw=0)
    for tm, _ in result.boots[1:]:
        ax.axvline(x(tm), color="black", lw=0.8, ls=":")
    ax.set_ylabel("stored,\nunacked", fontsize=8)
    ax.legend(handles=[Patch(color="#f39c12", alpha=0.3, label="link down"),
                       Patch(color="black", alpha=0.3, label="power off"),
                       Patch(color="#8e44ad", alpha=0.25, label="disk full")], fontsize=6, ncol=3,
              loc="upper right", frameon=False)
    ax.set_xlabel("virtual time (%s since start)" % unit, fontsize=8)
    ax.set_xlim(0, x(result.end_ms))
    ax.tick_params(labelsize=7)

    lines = ["%s %s" % ("PASS" if o.passed else "FAIL", o.name) for o in result.outcomes]
    fig.text(0.01, 0.005, "   ".join(lines)[:220], fontsize=6.5, va="bottom")
    fig.tight_layout(rect=(0, 0.02, 1, 0.97))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
