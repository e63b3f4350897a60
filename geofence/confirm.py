"""Anti-flap confirmation over evidence sequences, vectorised over many (device, fence) keys.

Input is flattened: for each key, the evidence of its device's fixes in time order (``IN``, ``OUT``, ``BAND``
= in the hysteresis band, or ``HOLD`` = ignored), plus the key's state: confirmed side, pending side, when the
pending run started and how many evidence fixes it holds. The rule, per key: evidence equal to the confirmed
side, or a ``BAND`` fix, clears any pending run; evidence of the other side extends (or starts) the pending
run, which is confirmed — an ``enter`` or ``exit`` — at the first fix where the run holds ``need`` fixes
spanning ``dwell`` ms. ``HOLD`` fixes are skipped. A key whose side is unknown adopts its first evidence
silently.

Once ``HOLD`` is dropped the sequence splits into runs of equal values, and the confirmed side after any run is
the value of the last run that met the rule (``BAND`` runs never do), or the initial side. That makes the
whole computation a few cumulative operations instead of a loop over fixes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNKNOWN, OUT, IN, HOLD, BAND = -1, 0, 1, 2, 3


@dataclass(frozen=True, slots=True, eq=False)
class Confirmed:
    side: np.ndarray         # int8 (K,): confirmed side after the evidence
    pending: np.ndarray      # int8 (K,): pending side (UNKNOWN = none)
    since: np.ndarray        # int64 (K,): pending run start (UTC ms), 0 when none
    count: np.ndarray        # int64 (K,): evidence fixes in the pending run
    event_pos: np.ndarray    # int64: flat position of each confirming fix that changed the side
    event_side: np.ndarray   # int8: the new side (IN = enter, OUT = exit)
    event_since: np.ndarray  # int64: when the confirmed run started (UTC ms)
    side_before: np.ndarray  # int8: confirmed side just before each asked flat position (``at``; all by default)


def confirm(flat_key, ts, obs, side, pending, since, count, need, dwell, at=None, general=False) -> Confirmed:
    """Run the rule. ``flat_key``/``ts``/``obs``: flat arrays sorted by (key, time); the rest per key (K,).

    ``at``: the flat positions whose ``side_before`` is wanted (None: all). When no key has more than one
    evidence fix (the usual batch: one fix per device) a shorter computation gives the same result;
    ``general=True`` forces the run-based one (for tests).
    """
    flat_key = np.asarray(flat_key, np.int64)
    side, pending = np.array(side, np.int8), np.array(pending, np.int8)
    side_in = side.copy()
    since, count = np.array(since, np.int64), np.array(count, np.int64)
    e = np.flatnonzero(obs != HOLD)
    ek, ev, ets = flat_key[e], obs[e].astype(np.int8), ts[e]
    n = len(e)
    empty = np.zeros(0, np.int64)
    pos = np.arange(len(obs)) if at is None else np.asarray(at, np.int64)
    if n == 0:
        return Confirmed(side, pending, since, count, empty, empty.astype(np.int8), empty, side[flat_key[pos]])
    if not general and (n == 1 or bool((ek[1:] != ek[:-1]).all())):
        return _single(e, ek, ev, ets, side, pending, since, count, need, dwell, pos, flat_key, side_in)
    new_run = np.ones(n, bool)
    new_run[1:] = (ek[1:] != ek[:-1]) | (ev[1:] != ev[:-1])
    rs = np.flatnonzero(new_run)
    rid = np.cumsum(new_run) - 1
    rk, rv = ek[rs], ev[rs]
    nr = len(rs)
    key_first = np.ones(nr, bool)
    key_first[1:] = rk[1:] != rk[:-1]
    krun0 = np.flatnonzero(key_first)[np.cumsum(key_first) - 1]
    ev_run = rv != BAND
    seen = np.cumsum(ev_run)
    first_ev_run = ev_run & (seen - (seen[krun0] - ev_run[krun0]) == 1)
    s0 = side[rk]
    carry = key_first & (s0 != UNKNOWN) & (rv == pending[rk])
    run_t0 = np.where(carry, since[rk], ets[rs])
    run_c0 = np.where(carry, count[rk], 0)
    j = np.arange(n) - rs[rid]
    qual = (run_c0[rid] + j + 1 >= need[ek]) & (ets - run_t0[rid] >= dwell[ek]) & (ev != BAND)
    adopt = first_ev_run & (s0 == UNKNOWN)
    qual |= adopt[rid] & (j == 0)
    big = n
    firstq = np.minimum.reduceat(np.where(qual, np.arange(n), big), rs)
    q = firstq < big

    # Side before each run: the value of the last qualifying run of the same key before it.
    lastq = np.maximum.accumulate(np.where(q, np.arange(nr), -1))
    prev = np.concatenate([[-1], lastq[:-1]])
    has_prev = prev >= krun0
    before = np.where(has_prev, rv[np.maximum(prev, 0)], s0)
    changed = q & (before != UNKNOWN) & (rv != before)

    # Final state of keys with evidence.
    key_last = np.ones(nr, bool)
    key_last[:-1] = rk[1:] != rk[:-1]
    lr = np.flatnonzero(key_last)
    has_q = lastq[lr] >= krun0[lr]
    final = np.where(has_q, rv[np.maximum(lastq[lr], 0)], s0[lr])
    run_len = np.diff(np.append(rs, n))
    open_run = (rv[lr] != final) & (rv[lr] != BAND)
    k = rk[lr]
    side[k] = final
    pending[k] = np.where(open_run, rv[lr], UNKNOWN)
    since[k] = np.where(open_run, run_t0[lr], 0)
    count[k] = np.where(open_run, run_c0[lr] + run_len[lr], 0)

    side_before = _side_before(e[firstq[q]], rk[q], rv[q], pos, flat_key, side_in)
    return Confirmed(side, pending, since, count, e[firstq[changed]], rv[changed], run_t0[changed], side_before)


def _single(e, ek, ev, ets, side, pending, since, count, need, dwell, pos, flat_key, side_in) -> Confirmed:
    """:func:`confirm` when every key has exactly one evidence fix (``ek`` strictly increasing): the rule
    applied to that fix alone."""
    s0 = side[ek]
    carry = (s0 != UNKNOWN) & (ev == pending[ek])          # the fix extends the pending run
    run_t0 = np.where(carry, since[ek], ets)
    run_c0 = np.where(carry, count[ek], 0)
    evid = ev != BAND
    qual = ((run_c0 + 1 >= need[ek]) & (ets - run_t0 >= dwell[ek]) & evid) | (evid & (s0 == UNKNOWN))
    changed = qual & (s0 != UNKNOWN) & (ev != s0)
    final = np.where(qual, ev, s0)
    open_run = (ev != final) & evid
    side[ek] = final
    pending[ek] = np.where(open_run, ev, UNKNOWN)
    since[ek] = np.where(open_run, run_t0, 0)
    count[ek] = np.where(open_run, run_c0 + 1, 0)
    side_before = _side_before(e[qual], ek[qual], ev[qual], pos, flat_key, side_in)
    return Confirmed(side, pending, since, count, e[changed], ev[changed], run_t0[changed], side_before)


def _side_before(conf_pos, conf_key, conf_val, pos, flat_key, side_in) -> np.ndarray:
    """Side just before every flat position ``pos``: the last confirming fix strictly earlier in the same
    key, else the key's side on entry."""
    prior = np.searchsorted(conf_pos, pos, "left") - 1
    valid = prior >= 0
    valid[valid] = conf_key[prior[valid]] == flat_key[pos[valid]]
    side_before = side_in[flat_key[pos]]
    if len(conf_pos):
        side_before = np.where(valid, conf_val[np.maximum(prior, 0)], side_before)
    return side_before.astype(np.int8)
