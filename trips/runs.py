"""Index helpers: runs of consecutive selected rows, concatenated ranges, run membership."""

from __future__ import annotations

import numpy as np


def runs_of(rows: np.ndarray, block_start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split the sorted row indices ``rows`` into runs of consecutive rows of one block (``block_start``:
    bool per table row, set at each device's first row and after each long gap).

    Returns (first, last) int64 arrays of positions *into rows*: run k is rows[first[k]:last[k] + 1].
    """
    if len(rows) == 0:
        e = np.zeros(0, np.int64)
        return e, e
    cut = np.ones(len(rows), bool)
    cut[1:] = (rows[1:] != rows[:-1] + 1) | block_start[rows[1:]]
    first = np.flatnonzero(cut)
    last = np.empty_like(first)
    last[:-1] = first[1:] - 1
    last[-1] = len(rows) - 1
    return first, last


def spans(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + l) for each (s, l), without a Python loop."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    offsets = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) + np.repeat(np.asarray(starts, np.int64) - offsets, lengths)


def containing_run(rows: np.ndarray, run_start: np.ndarray, run_end: np.ndarray) -> np.ndarray:
    """Index of the run (sorted, disjoint [start, end] row ranges) holding each row, -1 when none."""
    k = np.searchsorted(run_start, rows, side="right") - 1
    ok = k >= 0
    ok[ok] = run_end[k[ok]] >= rows[ok]
    return np.where(ok, k, -1)
