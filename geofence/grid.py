"""A multi-level lat/lon cell index over fence boxes: the prefilter of the hot path, pure NumPy.

Each box is registered in the cells it covers on the finest level where it covers at most ``MAX_CELLS``
cells (levels are 4× coarser each). A query maps every point to one cell per non-empty level and expands the
cell's fence list, so there is no per-point or per-fence Python work. Points on the cell grid are exact
(integer cell keys), so a box is found whenever the point is inside it; the caller then applies the exact
box and geometry tests. An STRtree needs a shapely Point per fix, which costs more than this whole lookup.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_CELLS = 144
LEVELS = 12
DENSE_CELLS = 1 << 23     # a level whose cell window is at most this large gets a direct lookup table


@dataclass(frozen=True, slots=True, eq=False)
class _Level:
    cell_deg: float
    n_lon: int
    keys: np.ndarray      # int64, sorted unique cell keys
    offsets: np.ndarray   # int64 (len(keys) + 1,): CSR offsets into ``items``
    items: np.ndarray     # int64: box owner (fence index) per registration
    window: tuple         # (i0, j0, rows, cols) of the dense table, or () without one
    table: np.ndarray     # int32 (rows * cols + 1,): index into ``keys`` per cell of the window, -1 empty
    shift: int            # log2 of cell_deg over the finest level's, -1 when not a power-of-two multiple

    def slots(self, lat, lon) -> np.ndarray:
        """Index into ``keys`` of each point's cell, -1 where the cell is empty."""
        i = np.floor((lat + 90.0) * (1.0 / self.cell_deg)).astype(np.int64)
        j = np.floor(((lon + 180.0) % 360.0) * (1.0 / self.cell_deg)).astype(np.int64) % self.n_lon
        return self.lookup(i, j)

    def slots_of_cells(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Like :meth:`lookup` for cells already in range (``0 <= j < n_lon``); ``i``, ``j`` are consumed."""
        if not self.window:
            return self.lookup(i, j)
        i0, j0, rows, cols = self.window
        i -= i0
        j -= j0
        if j0 + cols > self.n_lon:        # the window wraps round ±180
            j %= self.n_lon
        unsigned = np.uint32 if i.dtype == np.int32 else np.uint64
        ok = i.view(unsigned) < rows      # negative offsets become huge: one test per bound pair
        ok &= j.view(unsigned) < cols
        i *= cols
        i += j
        return self.table[np.where(ok, i, rows * cols)]

    def expand(self, q, slot: np.ndarray, qs: list, owners: list) -> None:
        """Append (query, owner) pairs for queries ``q`` (None: 0..len(slot)-1) whose cell is ``slot`` (-1: empty)."""
        hit = np.flatnonzero(slot >= 0)
        if len(hit) == 0:
            return
        q, slot = (hit if q is None else q[hit]), slot[hit]
        start = self.offsets[slot]
        cnt = self.offsets[slot + 1] - start
        ends = np.cumsum(cnt)
        total = int(ends[-1])
        if total == len(cnt):              # one owner per cell (cells are never empty)
            qs.append(q)
            owners.append(self.items[start])
            return
        ends -= cnt
        start -= ends
        qs.append(np.repeat(q, cnt))
        owners.append(self.items[np.repeat(start, cnt) + np.arange(total)])

    def lookup(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Index into ``keys`` of cells (row ``i``, column ``j`` mod n_lon), -1 where empty."""
        i, j = i.astype(np.int64), j.astype(np.int64) % self.n_lon      # keys exceed int32
        if self.window:
            i0, j0, rows, cols = self.window
            i -= i0
            j = (j - j0) % self.n_lon
            ok = (i >= 0) & (i < rows) & (j < cols)
            return self.table[np.where(ok, i * cols + j, rows * cols)]
        key = i * self.n_lon + j
        pos = np.minimum(np.searchsorted(self.keys, key), len(self.keys) - 1)
        return np.where(self.keys[pos] == key, pos, -1)


def _cell_ranges(cell, lat_lo, lat_hi, lon_lo, lon_hi):
    n_lat = int(np.ceil(180.0 / cell))
    i0 = np.clip(np.floor((lat_lo + 90.0) / cell), 0, n_lat - 1).astype(np.int64)
    i1 = np.clip(np.floor((lat_hi + 90.0) / cell), 0, n_lat - 1).astype(np.int64)
    j0 = np.floor((lon_lo + 180.0) / cell).astype(np.int64)
    j1 = np.floor((lon_hi + 180.0) / cell).astype(np.int64)
    return i0, i1, j0, j1


@dataclass(frozen=True, slots=True, eq=False)
class GridIndex:
    levels: tuple[_Level, ...]

    @classmethod
    def build(cls, lat_lo, lat_hi, lon_lo, lon_hi, owner, *, reuse=None) -> "GridIndex":
        """Boxes in degrees with ``-180 <= lon_lo <= lon_hi <= 180`` (split antimeridian boxes beforehand).

        ``reuse``: (older index, new owner of each of its owners (-1: gone), bool mask of the boxes not in it).
        When the older index has the levels this one gets and the renumbering keeps its owners' order, its
        registrations are renumbered and only the new boxes registered: the same index, without the sort
        over every registration (see :func:`geofence.splice.splice`)."""
        lat_lo, lat_hi = np.asarray(lat_lo, float), np.asarray(lat_hi, float)
        lon_lo, lon_hi = np.asarray(lon_lo, float), np.asarray(lon_hi, float)
        owner = np.asarray(owner, np.int64)
        if len(owner) == 0:
            return cls(())
        extent = np.maximum(lat_hi - lat_lo, (lon_hi - lon_lo) * np.cos(np.radians(np.clip(
            np.maximum(np.abs(lat_lo), np.abs(lat_hi)), 0, 89.0))))
        base = 2.0 ** np.clip(np.round(np.log2(max(float(np.median(extent)) / 3, 1e-6))), -12, 0)
        left = np.ones(len(owner), bool)
        plan = []
        for k in range(LEVELS):
            cell = min(base * 4 ** k, 180.0)
            i0, i1, j0, j1 = _cell_ranges(cell, lat_lo, lat_hi, lon_lo, lon_hi)
            fits = left & (((i1 - i0 + 1) * (j1 - j0 + 1) <= MAX_CELLS) | (cell >= 180.0))
            if fits.any():
                plan.append((cell, fits, i0, i1, j0, j1))
            left &= ~fits
            if not left.any():
                break
        levels = None
        if reuse is not None:
            old, new_of_old, fresh = reuse
            kept = new_of_old[new_of_old >= 0]
            if [lv.cell_deg for lv in old.levels] == [p[0] for p in plan] and (np.diff(kept) > 0).all():
                levels = [_splice_level(lv, new_of_old, cell, *(a[fits & fresh] for a in (i0, i1, j0, j1, owner)))
                          for lv, (cell, fits, i0, i1, j0, j1) in zip(old.levels, plan)]
                levels = None if any(lv is None for lv in levels) else levels
        if levels is None:
            levels = [_register(cell, i0[fits], i1[fits], j0[fits], j1[fits], owner[fits])
                      for cell, fits, i0, i1, j0, j1 in plan]
        return cls(tuple(_with_shift(lv, levels[0].cell_deg) for lv in levels))

    def query(self, lat, lon) -> tuple[np.ndarray, np.ndarray]:
        """(point index, owner) pairs for every registered box whose cells hold the point."""
        lat, lon = np.asarray(lat, float), np.asarray(lon, float)
        pts, owners = [], []
        if not self.levels:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        # Cells are powers of two of degrees, 4x apart: the finest level's integer cell, shifted, is the
        # cell on every other level exactly (scaling by a power of two is exact in floating point).
        inv = 1.0 / self.levels[0].cell_deg
        x = lat + 90.0
        x *= inv
        # int32 cells (at most 360 / 2**-12 per axis) halve the memory traffic of the lookups.
        i0 = np.floor(x, out=x).astype(np.int32)
        x = lon + 180.0
        if len(x) and (x.min() < 0.0 or x.max() >= 360.0):
            x %= 360.0
        x *= inv
        j0 = np.floor(x, out=x).astype(np.int32)
        for lv in self.levels:
            if lv.shift < 0:
                slot = lv.slots(lat, lon)
            elif lv.shift == 0:
                slot = lv.slots_of_cells(i0.copy(), j0.copy())
            else:
                slot = lv.slots_of_cells(i0 >> lv.shift, j0 >> lv.shift)
            lv.expand(None, slot, pts, owners)
        if not pts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(pts), np.concatenate(owners)

    def query_boxes(self, lat_lo, lat_hi, lon_c, lon_half, max_cells: int = 16):
        """(query index, owner) pairs for boxes (deg; lon as centre ± half width) meeting registered cells.

        Pairs may repeat. Returns also a mask of the queries that span more than ``max_cells`` cells on
        some level: those are not answered here (ask an STRtree).
        """
        lat_lo, lat_hi = np.asarray(lat_lo, float), np.asarray(lat_hi, float)
        lon_c, lon_half = np.asarray(lon_c, float), np.asarray(lon_half, float)
        big = np.zeros(len(lat_lo), bool)
        ranges = []
        for lv in self.levels:
            inv = 1.0 / lv.cell_deg
            i0 = np.floor((lat_lo + 90.0) * inv).astype(np.int64)
            i1 = np.floor((lat_hi + 90.0) * inv).astype(np.int64)
            j0 = np.floor((lon_c - lon_half + 180.0) * inv).astype(np.int64)
            j1 = np.floor((lon_c + lon_half + 180.0) * inv).astype(np.int64)
            n_j = j1 - j0 + 1
            count = (i1 - i0 + 1) * n_j
            big |= count > max_cells
            ranges.append((lv, i0, j0, n_j, count))
        qs, owners = [], []
        for lv, i0, j0, n_j, count in ranges:
            n_i = count // n_j
            small = ~big & (n_i <= 2) & (n_j <= 2)       # the usual case: the four corner cells
            i1, j1 = i0 + n_i - 1, j0 + n_j - 1
            for ii, jj, mask in ((i0, j0, small), (i0, j1, small & (n_j == 2)),
                                 (i1, j0, small & (n_i == 2)), (i1, j1, small & (n_i == 2) & (n_j == 2))):
                q = np.flatnonzero(mask)
                lv.expand(q, lv.lookup(ii[q], jj[q]), qs, owners)
            rest = np.flatnonzero(~big & ~small)
            if len(rest):
                i0r, j0r, n_jr, cr = i0[rest], j0[rest], n_j[rest], count[rest]
                q = np.repeat(np.arange(len(rest)), cr)
                local = np.arange(int(cr.sum())) - np.repeat(np.cumsum(cr) - cr, cr)
                lv.expand(rest[q], lv.lookup(i0r[q] + local // n_jr[q], j0r[q] + local % n_jr[q]), qs, owners)
        if not qs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), big
        return np.concatenate(qs), np.concatenate(owners), big


def _with_shift(lv: _Level, finest: float) -> _Level:
    ratio = lv.cell_deg / finest
    shift = int(round(np.log2(ratio)))
    exact = ratio == 2.0 ** shift and np.log2(finest) == round(np.log2(finest)) and lv.n_lon * ratio == round(360.0 / finest)
    return _Level(lv.cell_deg, lv.n_lon, lv.keys, lv.offsets, lv.items, lv.window, lv.table, shift if exact else -1)


def _register(cell, i0, i1, j0, j1, owner) -> _Level:
    n_lon = int(np.ceil(360.0 / cell))
    cell_key, items = _pairs(n_lon, i0, i1, j0, j1, owner)
    return _level(cell, n_lon, cell_key, items)


def _splice_level(old: _Level, new_of_old, cell, i0, i1, j0, j1, owner) -> _Level | None:
    """``old`` with its owners renumbered by ``new_of_old`` (increasing; -1 drops) and the boxes given added;
    None when nothing is left."""
    n_lon = old.n_lon
    cell_key = np.repeat(old.keys, np.diff(old.offsets))
    items = new_of_old[old.items]
    keep = items >= 0
    cell_key, items = cell_key[keep], items[keep]
    if len(owner):
        width = int(max(int(items.max()) if len(items) else 0, int(owner.max()))) + 1
        add_key, add_items = _pairs(n_lon, i0, i1, j0, j1, owner)
        at = np.searchsorted(cell_key * width + items, add_key * width + add_items)
        cell_key, items = np.insert(cell_key, at, add_key), np.insert(items, at, add_items)
    return _level(cell, n_lon, cell_key, items) if len(items) else None


def _pairs(n_lon, i0, i1, j0, j1, owner) -> tuple[np.ndarray, np.ndarray]:
    """(cell key, owner) of every cell each box covers, sorted by key then owner, without repeats."""
    n_i, n_j = i1 - i0 + 1, j1 - j0 + 1
    count = n_i * n_j
    total = int(count.sum())
    box = np.repeat(np.arange(len(owner)), count)
    local = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    ii = i0[box] + local // n_j[box]
    jj = (j0[box] + local % n_j[box]) % n_lon
    key = ii * n_lon + jj
    width = int(owner.max()) + 1
    pair = np.sort(key * width + owner[box])
    pair = pair[np.append(True, pair[1:] != pair[:-1])]     # a box split at ±180 may share a cell with its twin
    return pair // width, pair % width


def _level(cell, n_lon, cell_key, items) -> _Level:
    """The level of registrations (``cell_key``, ``items``) sorted by key then owner."""
    starts = np.flatnonzero(np.append(True, cell_key[1:] != cell_key[:-1]))
    keys = cell_key[starts]
    offsets = np.append(starts, len(cell_key)).astype(np.int64)
    ci, cj = keys // n_lon, keys % n_lon
    i_lo, rows = int(ci.min()), int(ci.max() - ci.min() + 1)
    # The window in longitude starts after the widest empty gap, so a cluster across ±180 stays compact.
    present = np.zeros(n_lon, bool)
    present[cj] = True
    uj = np.flatnonzero(present)
    gaps = np.diff(np.append(uj, uj[0] + n_lon))
    g = int(np.argmax(gaps))
    j_lo = int(uj[(g + 1) % len(uj)])
    cols = int(n_lon - gaps[g] + 1)
    window, table = (), np.zeros(0, np.int32)
    if rows * cols <= DENSE_CELLS:
        window = (i_lo, j_lo, rows, cols)
        table = np.full(rows * cols + 1, -1, np.int32)     # the last entry answers cells off the window
        table[(ci - i_lo) * cols + (cj - j_lo) % n_lon] = np.arange(len(keys), dtype=np.int32)
    return _Level(cell, n_lon, keys, offsets, items, window, table, -1)
