"""Late-fix flagging: a pure function, checked against a plain per-fix reference."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.late import flag_late


def reference(device, ts, received, high_water, late_after_ms):
    out = []
    for d, t, r in zip(device, ts, received):
        newest = high_water.get(d, -1)
        out.append(t < newest or r - t > late_after_ms)
        high_water[d] = max(newest, t)
    return out


def test_out_of_order_and_buffered_fixes():
    hw = {}
    now = 1_800_000_000_000
    late = flag_late([1, 1, 2, 1], [now, now - 1000, now, now + 1000], [now] * 4, hw)
    assert late.tolist() == [False, True, False, False]
    assert hw == {1: now + 1000, 2: now}
    late = flag_late([2, 3], [now - 5, now - 3_600_000], [now, now], hw)
    assert late.tolist() == [True, True]  # older than seen before; an hour-old buffer


@settings(max_examples=300)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 50), st.integers(0, 10)), max_size=60),
       st.dictionaries(st.integers(0, 4), st.integers(0, 50)))
def test_matches_reference(rows, initial):
    device = [r[0] for r in rows]
    ts = [r[1] for r in rows]
    received = [r[1] + r[2] for r in rows]
    hw_ref, hw = dict(initial), dict(initial)
    expected = reference(device, ts, received, hw_ref, late_after_ms=5)
    got = flag_late(np.array(device, dtype=np.int64), np.array(ts, dtype=np.int64),
                    np.array(received, dtype=np.int64), hw, late_after_ms=5)
    assert got.tolist() == expected
    assert hw == hw_ref
