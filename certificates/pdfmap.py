"""A small map drawn from the certificate's own coordinates: lines, points, a circle and a scale bar.

No tiles: a local equirectangular projection (x east = Δlon·cos φ0, y north = Δlat) scaled to fit the box,
which is exact enough for the few kilometres a certificate shows. Units: mm on the page, m on the ground.
"""

from __future__ import annotations

import math

from fpdf import FPDF

M_PER_DEG = 111_320.0   # metres per degree of latitude (mean), for the scale bar and the circle


def _nice(length_m: float) -> float:
    """The largest 1, 2 or 5 x 10^n metres not above ``length_m``."""
    exp = 10 ** math.floor(math.log10(max(length_m, 1e-3)))
    return max(m * exp for m in (1, 2, 5) if m * exp <= length_m)


def draw_map(pdf: FPDF, the_map: dict, x: float, y: float, w: float, h: float) -> None:
    """Draw ``the_map`` ({"lines": [[[lat, lon], …]], "points": [{lat, lon, label}], "circle": {lat, lon,
    radius_m} | None, "view": {lat, lon, radius_m} | None}) in the box (x, y, w, h) mm. Without a view the
    map fits everything; with one it shows that window and clips the rest."""
    pdf.set_draw_color(120, 120, 120)
    pdf.set_line_width(0.2)
    pdf.rect(x, y, w, h)
    pts = [tuple(p) for line in the_map.get("lines", []) for p in line]
    pts += [(p["lat"], p["lon"]) for p in the_map.get("points", [])]
    circle = the_map.get("circle")
    view = the_map.get("view")
    extra_m = 0.0
    if circle:
        pts.append((circle["lat"], circle["lon"]))
        extra_m = circle["radius_m"]
    if view:                     # a fixed window (clipped): what matters, not all the context
        pts, extra_m = [(view["lat"], view["lon"])], view["radius_m"]
    if not pts:
        pdf.set_font("Helvetica", "I", 9)
        pdf.set_xy(x, y + h / 2 - 3)
        pdf.cell(w, 6, "no positions to show", align="C")
        return
    lat0 = sum(p[0] for p in pts) / len(pts)
    k = math.cos(math.radians(lat0))
    xs = [p[1] * k for p in pts]
    ys = [p[0] for p in pts]
    pad = extra_m / M_PER_DEG
    min_x, max_x = min(xs) - pad, max(xs) + pad
    min_y, max_y = min(ys) - pad, max(ys) + pad
    span = max(max_x - min_x, max_y - min_y, 200.0 / M_PER_DEG)        # at least 200 m shown
    margin = 6.0
    scale = min((w - 2 * margin) / max(max_x - min_x, 1e-12), (h - 2 * margin) / max(max_y - min_y, 1e-12),
                (min(w, h) - 2 * margin) / span)                     # mm per degree
    cx, cy = (min_x + max_x) / 2, (min_y + max_y) / 2

    def page(lat: float, lon: float) -> tuple[float, float]:
        return x + w / 2 + (lon * k - cx) * scale, y + h / 2 - (lat - cy) * scale

    with pdf.rect_clip(x, y, w, h):
        _draw(pdf, the_map, circle, page, scale)
    _scale_bar(pdf, x, y, w, h, scale)


def _draw(pdf: FPDF, the_map: dict, circle: dict | None, page, scale: float) -> None:
    pdf.set_draw_color(30, 90, 200)
    pdf.set_line_width(0.5)
    for line in the_map.get("lines", []):
        if len(line) >= 2:
            pdf.polyline([page(la, lo) for la, lo in line])
        pdf.set_fill_color(30, 90, 200)
        for la, lo in line[:: max(1, len(line) // 60)]:
            px, py = page(la, lo)
            pdf.ellipse(px - 0.35, py - 0.35, 0.7, 0.7, style="F")
    if circle:
        r_mm = circle["radius_m"] / M_PER_DEG * scale
        px, py = page(circle["lat"], circle["lon"])
        pdf.set_draw_color(200, 40, 40)
        pdf.set_line_width(0.4)
        pdf.ellipse(px - r_mm, py - r_mm, 2 * r_mm, 2 * r_mm)
        pdf.line(px - 1.5, py, px + 1.5, py)
        pdf.line(px, py - 1.5, px, py + 1.5)
    pdf.set_font("Helvetica", "", 7)
    for p in the_map.get("points", []):
        px, py = page(p["lat"], p["lon"])
        alleged = p["label"] == "alleged place"
        pdf.set_fill_color(*((230, 140, 0) if alleged else (20, 20, 20)))
        pdf.ellipse(px - 1.0, py - 1.0, 2.0, 2.0, style="F")
        pdf.set_xy(px + 1.5, py - 2.0)
        pdf.cell(20, 4, p["label"])


def _scale_bar(pdf: FPDF, x: float, y: float, w: float, h: float, scale: float) -> None:
    bar_m = _nice((w / 4) / scale * M_PER_DEG)
    bar_mm = bar_m / M_PER_DEG * scale
    bx, by = x + 4, y + h - 4
    pdf.set_draw_color(0, 0, 0)
    pdf.set_line_width(0.6)
    pdf.line(bx, by, bx + bar_mm, by)
    pdf.line(bx, by - 1, bx, by + 0.5)
    pdf.line(bx + bar_mm, by - 1, bx + bar_mm, by + 0.5)
    pdf.set_xy(bx, by - 5)
    pdf.cell(bar_mm, 4, f"{bar_m:g} m" if bar_m < 1000 else f"{bar_m / 1000:g} km", align="C")
    pdf.set_xy(x + w - 12, y + 2)
    pdf.cell(10, 4, "N ^", align="R")
