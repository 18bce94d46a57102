"""Damage to valid bytes, drawn by hypothesis: for tests holding a shortcut
to the general path's answers on nearly valid input (random bytes rarely
come close to the shapes a shortcut accepts)."""

from hypothesis import strategies as st


def damaged(data, draw, most=3, span=9):
    """``data`` with 1 to ``most`` bytes replaced, runs of up to ``span``
    bytes deleted or inserted; b"" when all of it went."""
    out = bytearray(data)
    for _ in range(draw.draw(st.integers(1, most))):
        if not out:
            break
        at = draw.draw(st.integers(0, len(out) - 1))
        action = draw.draw(st.integers(0, 2))
        if action == 0:
            out[at] = draw.draw(st.integers(0, 255))
        elif action == 1:
            del out[at:at + draw.draw(st.integers(1, span))]
        else:
            out[at:at] = draw.draw(st.binary(min_size=1, max_size=span))
    return bytes(out)
