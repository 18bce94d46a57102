"""Sensor charts as server-side SVG: no JavaScript library, no CDN.

Downsampling (series.py does it as it reads): a chart is WIDTH pixels
wide, so a window of 30 days at 1 Hz (2.6 million readings) would put
~2,900 readings on each pixel column. The readings are cut into one bucket
per pixel column by time and each bucket keeps its minimum and its maximum,
in the order they happened (min/max per pixel bucket, as RRDtool's MIN/MAX
consolidation does): the polyline has at most 2 points per pixel, and every
spike and dip still shows at its height, which an average or a one-in-N
sample would hide.
"""

import datetime
from html import escape

WIDTH = 900  # plot area, pixels
HEIGHT = 200
LEFT, RIGHT, TOP, BOTTOM = 56, 48, 14, 26
TICKS = 6


def when(ms, fmt="%Y-%m-%d %H:%M:%S"):
    if ms is None:
        return ""
    try:
        return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(fmt)
    except (ValueError, OverflowError, OSError):  # a device clock centuries off
        return "?"


def svg(sensor, points, start_ms, end_ms, alerts=(), limits=None):
    """One sensor's chart: its readings' line, its limits (dashed), its
    alerts (a marker at their time), predictions (the crossing marked, the
    interval from earliest to latest shaded). ``alerts``: queries.Alert of
    this sensor; ``points``: [(time_ms, value)] in time order, as drawn."""
    values = [v for _, v in points]
    for alert in alerts:
        if alert.prediction and alert.prediction.get("threshold") is not None:
            values.append(alert.prediction["threshold"])
    if limits:
        values += [v for v in limits if v is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high == low:
        low, high = low - 1, high + 1
    pad = (high - low) * 0.05
    low, high = low - pad, high + pad
    span = max(1, end_ms - start_ms)

    def x(ms):
        return LEFT + (min(max(ms, start_ms), end_ms) - start_ms) * WIDTH / span

    def y(value):
        return TOP + (high - value) * HEIGHT / (high - low)

    full_w, full_h = LEFT + WIDTH + RIGHT, TOP + HEIGHT + BOTTOM
    parts = ['<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" '
             'data-sensor="%s" data-start="%d" data-end="%d" data-points="%d">'
             % (full_w, full_h, full_w, full_h, escape(sensor), start_ms, end_ms, len(points)),
             '<rect class="plot" x="%d" y="%d" width="%d" height="%d"/>' % (LEFT, TOP, WIDTH, HEIGHT)]
    for alert in alerts:
        prediction = alert.prediction
        if prediction and prediction.get("earliest") is not None:
            latest = prediction.get("latest") if prediction.get("latest") is not None else end_ms
            if latest >= start_ms and prediction["earliest"] <= end_ms:
                parts.append('<rect class="predicted-interval" x="%.1f" y="%d" width="%.1f" height="%d">'
                             '<title>predicted crossing between %s and %s</title></rect>'
                             % (x(prediction["earliest"]), TOP, max(1.0, x(latest) - x(prediction["earliest"])),
                                HEIGHT, when(prediction["earliest"]), when(prediction.get("latest"))))
    for index, limit in enumerate(limits or ()):
        if limit is not None:
            parts.append('<line class="limit" x1="%d" x2="%d" y1="%.1f" y2="%.1f"><title>%s limit %s</title></line>'
                         % (LEFT, LEFT + WIDTH, y(limit), y(limit), ("low", "high")[index], _num(limit)))
    for i in range(TICKS + 1):
        ms = start_ms + span * i // TICKS
        parts.append('<text class="tick" x="%.1f" y="%d" text-anchor="middle">%s</text>'
                     % (x(ms), full_h - 8, escape(when(ms, "%m-%d %H:%M:%S" if span < 2 * 86400000 else "%m-%d %H:%M"))))
    for value in (low + pad, high - pad):
        parts.append('<text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>' % (LEFT - 4, y(value) + 4, _num(value)))
    if points:
        parts.append('<polyline class="line" points="%s"/>'
                     % " ".join("%.1f,%.1f" % (x(t), y(v)) for t, v in points))
    for alert in alerts:
        cls = "alert-marker %s%s" % (escape(alert.severity or "info"), "" if alert.active else " cleared")
        label = "%s %s %s at %s" % (alert.condition, alert.sensor, "raised" if alert.active else "cleared",
                                     when(alert.time_ms))
        parts.append('<g class="%s" data-time="%d" data-condition="%s" data-seq="%d"><title>%s</title>'
                     '<line x1="%.1f" x2="%.1f" y1="%d" y2="%d"/><circle cx="%.1f" cy="%d" r="5"/></g>'
                     % (cls, alert.time_ms, escape(alert.condition), alert.seq, escape(label),
                        x(alert.time_ms), x(alert.time_ms), TOP, TOP + HEIGHT, x(alert.time_ms), TOP + 6))
        prediction = alert.prediction
        if prediction and prediction.get("threshold") is not None:
            parts.append('<line class="predicted-threshold" x1="%d" x2="%d" y1="%.1f" y2="%.1f"><title>predicted '
                         'to reach %s</title></line>' % (LEFT, LEFT + WIDTH, y(prediction["threshold"]),
                                                        y(prediction["threshold"]), _num(prediction["threshold"])))
        if prediction and prediction.get("crossing") is not None and start_ms <= prediction["crossing"] <= end_ms:
            parts.append('<line class="predicted-crossing" x1="%.1f" x2="%.1f" y1="%d" y2="%d">'
                         '<title>predicted crossing %s</title></line>'
                         % (x(prediction["crossing"]), x(prediction["crossing"]), TOP, TOP + HEIGHT,
                            when(prediction["crossing"])))
    parts.append("</svg>")
    return "".join(parts)


def _num(value):
    return ("%.4g" % value) if isinstance(value, float) else str(value)
