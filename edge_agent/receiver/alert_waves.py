"""A batch's single-alert messages, stored in waves (service.py).

Alerts travel one to a message, so a batch of alerts would cost a statement
each. The receiver holds them while it handles the batch and stores them a
wave at a time (storage.store_alerts: one statement on PostgreSQL). A wave
holds at most one alert per ticket key (device, component, condition) and
per (device, seq): the n-th alert of a key goes in the n-th wave, so each
ticket still changes alert by alert in the order they came, and each
wave's alerts are followed up (counted, logged, routed, reported to fleet
escalation) before the next wave is stored. Alerts of different keys
touch different tickets; the one row they share, their device's, adds up
the same in any order."""

from edge_agent.receiver.tickets import alert_key


def waves(alerts):
    """``alerts`` ((payload, signal, body), in batch order)
    as a list of waves, each in batch order."""
    result = []
    next_wave = {}  # key -> the wave its next alert goes in
    for alert in alerts:
        signal = alert[1]
        keys = ((signal.device,) + alert_key(signal.body), (signal.device, signal.seq))
        wave = max(next_wave.get(key, 0) for key in keys)
        for key in keys:
            next_wave[key] = wave + 1
        if wave == len(result):
            result.append([])
        result[wave].append(alert)
    return result
