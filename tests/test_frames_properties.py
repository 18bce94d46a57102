"""Property tests for the serial frame decoder (CPython, hypothesis).

- random bytes never make feed() raise, and memory stays bounded;
- every valid frame embedded in arbitrary noise is recovered, whatever the
  noise and however the stream is chunked;
- encode -> decode is the identity for every encodable reading.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.core import frames as fr

sensor_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=fr.MAX_SENSOR_ID)
finite = st.floats(allow_nan=False, allow_infinity=False)
error_codes = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12)
frames = st.one_of(
    st.builds(fr.Frame, st.just(fr.READING), sensor_ids, finite),
    st.builds(fr.Frame, st.just(fr.SENSOR_ERROR), sensor_ids, error_codes),
)


def _encode(frame):
    return fr.encode_frame(frame.kind, frame.sensor, frame.value)


def _feed_chunked(data, cuts):
    decoder = fr.FrameDecoder()
    events = []
    start = 0
    for cut in sorted(set(c % (len(data) + 1) for c in cuts)) + [len(data)]:
        events.extend(decoder.feed(data[start:cut]))
        start = cut
    events.extend(decoder.flush())
    return decoder, events


@settings(max_examples=1500)
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=8))
def test_random_bytes_never_raise_and_stay_bounded(data, cuts):
    decoder, events = _feed_chunked(data, cuts)
    assert len(decoder._buffer) <= fr.MAX_FRAME
    for event in events:
        assert isinstance(event, (fr.Frame, fr.BadFrame))


@given(frames)
def test_encode_decode_identity(frame):
    assert fr.FrameDecoder().feed(_encode(frame)) == [frame]


@settings(max_examples=1000)
@given(
    st.lists(st.tuples(st.binary(max_size=60), frames), min_size=1, max_size=6),
    st.binary(max_size=60),
    st.lists(st.integers(0, 2000), max_size=10),
)
def test_valid_frames_in_noise_are_all_recovered(pieces, tail, cuts):
    stream = b""
    expected = []
    for noise, frame in pieces:
        stream += noise + _encode(frame)
        expected.append(frame)
    stream += tail
    _, events = _feed_chunked(stream, cuts)
    recovered = [e for e in events if isinstance(e, fr.Frame)]
    # Noise may itself contain valid frames by chance (vanishingly rare but
    # legal), so require ours as an ordered subsequence of what came out.
    it = iter(recovered)
    assert all(any(frame == got for got in it) for frame in expected), (expected, recovered)


@given(frames, st.integers(0, 200), st.integers(1, 255))
def test_single_bit_errors_are_caught(frame, position, flip):
    data = bytearray(_encode(frame))
    position %= len(data) - 2  # leave the line end alone
    data[position] ^= flip & 0x7F or 1
    events = fr.FrameDecoder().feed(bytes(data)) + []
    goods = [e for e in events if isinstance(e, fr.Frame)]
    # A corrupted frame is never accepted as a *different* frame (CRC-16
    # catches every error burst up to 16 bits).
    assert goods in ([], [frame]), (bytes(data), events)
