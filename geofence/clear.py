"""Clearance map: how far (in cells) each cell of a coarse lat/lon raster is from any fence's grown box.

The step's per-fix work (grid query, evidence, the segment's cross check) finds nothing for most fixes: they
are nowhere near a fence. This map lets the step skip that work exactly where the result is known to be
empty. Over the bounding region of the fences' boxes grown by ``pad_m`` (the boxes the grid registers), a
uniform raster of at most ``BUDGET_CELLS`` cells (``CELLS_PER_FENCE`` per fence, at least ``MIN_CELLS``:
fewer fences, coarser cells and a cheaper build) holds, per cell, the Chebyshev distance in cells to the
nearest cell a grown box touches (0: touched), capped at ``MAX_CLEAR``; a valid position off the map is
``MAX_CLEAR`` from any (the map has ``_PAD`` untouched cells round the boxes). Then, for a fix at ``D``:

- ``D >= 1``: the fix is in no grown box, so the grid gives it no candidate that survives the grown-box
  test (the fix's own accuracy margin must fit in ``pad_m``, as the grid path already requires);
- its segment from a previous fix whose cell is fewer than ``D`` cells away (per axis) lies in a block of
  untouched cells, so no fence box meets the segment's box and no candidate for ``cross`` exists.

Both follow from monotone cell arithmetic (``floor((x - origin) * inv)`` never orders two values the other
way round), with no tolerance needed: a fix or segment box reaching a fence's plain box is at least the
1 m of ``pad_m`` inside its grown box. The map is part of the fence set (built with the grid, so a splice or
reload replaces it with the set), which is why the step keeps no clearance in its state and nothing has to
invalidate one. Building it costs about 0.08 s at 10k bench fences (scipy's chessboard distance transform),
so every splice pays that. Sets whose region comes near the poles or the antimeridian, or whose boxes touch
more than ``MAX_TOUCHED`` of the cells (100k bench fences: nothing would be skipped), get no map (``dist``
empty): the step then does the full work for every fix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

BUDGET_CELLS = 1 << 22      # 4 MB of uint8: cells ~110 m over a 220 × 220 km region
CELLS_PER_FENCE = 512       # fewer fences get fewer, coarser cells (at least MIN_CELLS): cheaper to build
MIN_CELLS = 1 << 18
MIN_CELL_DEG = 1.0 / 4096   # ~27 m of latitude: finer cells buy little and cost memory for small regions
MAX_CLEAR = 16              # distances are capped here: ~1.7 km at the bench's cells, beyond a fix's usual move
MAX_TOUCHED = 0.8           # a map with more of its cells touched would skip too little to pay for its lookups
_PAD = MAX_CLEAR + 1        # untouched cells around the region, so the capped blocks stay inside the map


@dataclass(frozen=True, slots=True, eq=False)
class Clearance:
    lat0: float             # deg: south edge of row 0
    lon0: float             # deg: west edge of column 0
    inv_lat: float          # rows per degree of latitude
    inv_lon: float          # columns per degree of longitude
    rows: int
    cols: int
    dist: np.ndarray        # uint8 (rows * cols + 1,): cells to the nearest touched cell (capped), then
                            # MAX_CLEAR for points off the map; empty: no map

    @classmethod
    def none(cls) -> "Clearance":
        return cls(0.0, 0.0, 1.0, 1.0, 0, 0, np.zeros(0, np.uint8))

    @classmethod
    def build(cls, grown_box: np.ndarray) -> "Clearance":
        """From the grown boxes (n, 4): lat min, lat max, lon centre, lon half width (deg)."""
        g = np.asarray(grown_box, float).reshape(-1, 4)
        if len(g) == 0:
            return cls.none()
        lat_lo, lat_hi = g[:, 0], g[:, 1]
        lon_lo, lon_hi = g[:, 2] - g[:, 3], g[:, 2] + g[:, 3]
        a_lat, b_lat, a_lon, b_lon = lat_lo.min(), lat_hi.max(), lon_lo.min(), lon_hi.max()
        if not np.isfinite([a_lat, b_lat, a_lon, b_lon]).all() or a_lat < -80.0 or b_lat > 80.0:
            return cls.none()
        cos = float(np.cos(np.radians(max(abs(a_lat), abs(b_lat)))))
        # Square-ish cells in metres; the region plus padding within the budget.
        area = (b_lat - a_lat) * (b_lon - a_lon) * cos
        budget = min(BUDGET_CELLS, max(MIN_CELLS, CELLS_PER_FENCE * len(g)))
        cell = max(float(np.sqrt(area / budget)) * 1.05, MIN_CELL_DEG)
        while True:
            c_lat, c_lon = cell, cell / cos
            rows = int(np.ceil((b_lat - a_lat) / c_lat)) + 2 * _PAD + 1
            cols = int(np.ceil((b_lon - a_lon) / c_lon)) + 2 * _PAD + 1
            if rows * cols <= budget:
                break
            cell *= 1.25
        lat0, lon0 = a_lat - _PAD * c_lat, a_lon - _PAD * c_lon
        # Blocks of up to MAX_CLEAR cells round a cell of the map stay clear of ±180, where lon wraps.
        if lon0 - _PAD * c_lon <= -180.0 or lon0 + (cols + _PAD) * c_lon >= 180.0:
            return cls.none()
        out = cls(float(lat0), float(lon0), 1.0 / c_lat, 1.0 / c_lon, rows, cols, np.zeros(0, np.uint8))
        i0, j0 = (v.astype(np.int64) for v in out._rows_cols(lat_lo, lon_lo))
        i1, j1 = (v.astype(np.int64) for v in out._rows_cols(lat_hi, lon_hi))
        # Touched cells: per row of each box's cell rectangle, +1 at its first column and -1 past its last,
        # summed along the rows (contiguous, so cheap).
        span = i1 - i0 + 1
        row = np.repeat(i0 - (np.cumsum(span) - span), span) + np.arange(int(span.sum()))
        row *= cols + 1
        size = rows * (cols + 1)
        diff = np.bincount(row + np.repeat(j0, span), minlength=size)
        diff -= np.bincount(row + np.repeat(j1 + 1, span), minlength=size)
        touched = np.cumsum(diff.reshape(rows, cols + 1), axis=1)[:, :cols] > 0
        if touched.mean() > MAX_TOUCHED:
            return cls.none()
        dist = np.minimum(ndimage.distance_transform_cdt(~touched, metric="chessboard"), MAX_CLEAR)
        return cls(out.lat0, out.lon0, out.inv_lat, out.inv_lon, rows, cols,
                   np.append(dist.astype(np.uint8).ravel(), np.uint8(MAX_CLEAR)))

    @property
    def enabled(self) -> bool:
        return len(self.dist) > 0

    def _rows_cols(self, lat, lon) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of each point as whole floats (NaN stays NaN: it compares false everywhere)."""
        i = np.asarray(lat, float) - self.lat0
        i *= self.inv_lat
        j = np.asarray(lon, float) - self.lon0
        j *= self.inv_lon
        return np.floor(i, out=i), np.floor(j, out=j)

    def lookup(self, lat, lon) -> np.ndarray:
        """Clearance (cells, uint8) of each point's cell; off the map ``MAX_CLEAR`` (no box lies within
        ``_PAD`` cells of its edge), 0 for points with no valid position or without a map."""
        return self.lookup_cells(lat, lon)[0]

    def lookup_cells(self, lat, lon) -> tuple[np.ndarray, tuple | None]:
        """:meth:`lookup`, and the points' (row, column) as floats for :meth:`segments_clear` (None without
        a map)."""
        if not self.enabled:
            return np.zeros(len(lat), np.uint8), None
        cells = self._rows_cols(lat, lon)
        i, j = cells
        with np.errstate(invalid="ignore"):       # NaN and far-off points: any int, rejected by the range test
            i, j = i.astype(np.int32), j.astype(np.int32)
        ok = i.view(np.uint32) < self.rows        # negative rows become huge: one test per bound pair
        ok &= j.view(np.uint32) < self.cols
        i *= self.cols
        i += j
        d = self.dist[np.where(ok, i, self.rows * self.cols)]
        # A longitude beyond ±180 may be a box's, wrapped: only valid positions are clear off the map.
        valid = np.abs(lat) <= 90.0
        valid &= np.abs(lon) <= 180.0
        if not valid.all():
            d[~valid] = 0
        return d, cells

    def segments_clear(self, d_end, lat_a, lon_a, lat_b, lon_b, end_cells=None) -> np.ndarray:
        """Per segment from (lat_a, lon_a) to (lat_b, lon_b) whose end's clearance is ``d_end``: does its
        box lie in untouched cells (the start fewer than ``d_end`` cells from the end on both axes)?
        ``end_cells``: the ends' cells from :meth:`lookup_cells`, if at hand."""
        if not self.enabled:
            return np.zeros(len(d_end), bool)
        ia, ja = self._rows_cols(lat_a, lon_a)
        ib, jb = self._rows_cols(lat_b, lon_b) if end_cells is None else end_cells
        ia -= ib
        ja -= jb
        np.abs(ia, out=ia)
        np.maximum(ia, np.abs(ja, out=ja), out=ia)
        return ia < d_end          # NaN: false; d_end 0: false
