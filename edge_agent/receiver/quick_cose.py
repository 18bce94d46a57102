"""The receiver's shortcut through COSE: a message laid out exactly as
core/cose.py's sign1() and mac0() write it is parsed by hand, anything else
by cose.parse's general decoder.

A receiver parses one envelope per message, and for a single alert the
general decoder was a fifth of its time. Boards parse a few commands and
keep the general path alone (their heap is short of room for a second
parser), so this lives here, CPython only, like the rest of the receiver.
"""

from edge_agent.core import cose
from edge_agent.core import signals as sg


def parse(data):
    """cose.parse(data), quicker for our own layout: the same Envelope, or
    the same COSEError."""
    envelope = parse_own_layout(data)
    return envelope if envelope is not None else cose.parse(data)


def parse_own_layout(data):
    """The Envelope of a message laid out as sign1() and mac0() write it,
    read by hand; None for any other bytes. What it accepts, cose.parse
    accepts as the same Envelope (tests/test_cose_shortcut.py, with
    hypothesis): #6.17/18 in one byte, an array of 4, the protected map
    {1: alg in one byte, 4: kid} as its only content, an empty unprotected
    map, and nothing after the authenticator."""
    size = len(data)
    if size < 12 or data[1] != 0x84 or (data[0] != 0xD2 and data[0] != 0xD1):
        return None
    length, pos = _bstr_head(data, 2)
    end = pos + length
    # protected: a2 01 <alg> 04 <kid bstr>, the alg -24..23 in one byte
    if (length < 6 or end > size or data[pos] != 0xA2 or data[pos + 1] != cose.HEADER_ALG
            or data[pos + 3] != cose.HEADER_KID):
        return None
    alg = data[pos + 2]
    if alg < 0x18:
        pass
    elif 0x20 <= alg < 0x38:
        alg = -1 - (alg - 0x20)
    else:
        return None
    kid_length, kid_start = _bstr_head(data, pos + 4)
    if kid_start + kid_length != end or not 0 < kid_length <= cose.MAX_KID or end >= size or data[end] != 0xA0:
        return None
    length, payload_start = _bstr_head(data, end + 1)
    payload_end = payload_start + length
    if length < 0 or payload_end >= size:
        return None
    length, authenticator_start = _bstr_head(data, payload_end)
    tag = data[0] & 0x1F
    expected = cose.ED25519_SIGNATURE_SIZE if tag == cose.TAG_SIGN1 else cose.HMAC_SIZE
    if length != expected or authenticator_start + length != size:
        return None
    return cose.Envelope(tag, alg, bytes(data[kid_start:end]), bytes(data[payload_start:payload_end]),
                         bytes(data[pos:end]), bytes(data[authenticator_start:size]))


def _bstr_head(data, pos):
    """(length, start) of the byte string whose definite head is at ``pos``;
    a length that cannot be right (-1) for anything else."""
    try:
        length, start = sg.head_at(data, pos, 0x40)
    except IndexError:  # cut short
        return -1, pos
    return (-1, pos) if length is None else (length, start)
