"""MQTT control packets in a captured byte stream, for tests that watch
what a client or the receiver wrote to its socket (a pty capture, strace)."""


def packets(stream):
    """[(type, flags, body)] of an MQTT byte stream (plain TCP): each fixed
    header's type and flags (MQTT 5, 2.1.2) and the bytes after it.
    Raises ValueError for a stream that ends inside a packet."""
    found = []
    at = 0
    while at < len(stream):
        first = stream[at]
        length = 0
        shift = 0
        at += 1
        while True:
            byte = stream[at]
            at += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if at + length > len(stream):
            raise ValueError("a packet of %d bytes with %d left in the stream" % (length, len(stream) - at))
        found.append((first >> 4, first & 0x0F, bytes(stream[at:at + length])))
        at += length
    return found
