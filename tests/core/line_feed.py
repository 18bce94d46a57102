"""Feeding bytes to the console's line discipline in tests, as a UART
delivers them (both interpreters)."""

from edge_agent.core import console_line as cl


def pieces(data, chunk=None):
    """``data`` whole, or in pieces of ``chunk`` bytes."""
    return [data] if chunk is None else [data[i:i + chunk] for i in range(0, len(data), chunk)]


def feed(discipline, chunks, on_line):
    """Give ``discipline`` each chunk and take its events; ``on_line(text)``
    is called for each line typed (it answers it). Returns the events."""
    events = []
    for chunk in chunks:
        discipline.receive(chunk)
        while True:
            event = discipline.next_event()
            if event is None:
                break
            events.append(event)
            if event[0] == cl.LINE:
                on_line(event[1])
    return events
