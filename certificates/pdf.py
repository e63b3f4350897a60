"""The readable PDF of a certificate (fpdf2): identity, findings, a map, the signature and a QR code.

The PDF body embeds the signed JSON document verbatim as the attachment ``certificate.json``; the seal
(certificates.signing.seal_pdf) then signs the whole body. Rendering is a pure function of the document:
the PDF's dates come from the certificate, so the same document renders to the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json

import segno
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from certificates.pdfmap import draw_map

SIGNATURE_MM = 48   # height of the signature block under the map
TITLES = {"fine_assist": "Fine-assist certificate: where the vehicle was",
          "driving_style": "Driving-style certificate", "vehicle_usage": "Vehicle-usage certificate"}


def _latin(text: str) -> str:
    """The built-in PDF fonts are Latin-1; anything else shows as '?' (the embedded JSON is exact)."""
    return str(text).encode("latin-1", "replace").decode("latin-1")


def _text(value) -> str:
    return {None: "-", True: "yes", False: "no"}.get(value, str(value)) if not isinstance(value, (int, float)) \
        or isinstance(value, bool) else str(value)


def _lines(value, prefix: str = "") -> list[tuple[str, str]]:
    """Flatten findings into (label, text) rows."""
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out += _lines(v, f"{prefix}{k.replace('_', ' ')}: " if not isinstance(v, (dict, list)) or not v
                          else f"{prefix}{k.replace('_', ' ')} / ")
        return out
    if isinstance(value, list):
        if all(isinstance(v, dict) for v in value) and value:
            return [(prefix.rstrip(" /"), ", ".join(f"{k}={_text(v)}" for k, v in item.items())) for item in value]
        return [(prefix.rstrip(": /"), json.dumps(value))]
    return [(prefix.rstrip(": "), _text(value))]


def _qr(pdf: FPDF, url: str, x: float, y: float, size: float) -> None:
    qr = segno.make(url, error="m")
    rows = [list(r) for r in qr.matrix]
    n = len(rows)
    cell = size / n
    pdf.set_fill_color(0, 0, 0)
    for j, row in enumerate(rows):
        for i, dark in enumerate(row):
            if dark:
                pdf.rect(x + i * cell, y + j * cell, cell, cell, style="F")


def render_pdf(document: bytes) -> bytes:
    """The unsealed PDF body of a signed JSON document (bytes from certificates.signing)."""
    doc = json.loads(document)
    cert, sig = doc["certificate"], doc["signature"]
    issued = dt.datetime.strptime(cert["issued_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_creation_date(issued)
    pdf.set_title(_latin(f"{TITLES[cert['kind']]} {cert['id']}"))
    pdf.set_author("Vigil")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.embed_file(bytes=document, basename="certificate.json", mime_type="application/json",
                   modification_date=issued)
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(0, 9, _latin(TITLES[cert["kind"]]), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 9)
    head = [("Certificate id", cert["id"]), ("Vehicle", cert["vehicle_id"]), ("Issued at (UTC)", cert["issued_at"]),
            ("Issuer", cert["issuer"])]
    head += [(k.replace("_", " ").capitalize(), v) for k, v in (cert.get("subject") or {}).items()
             if v is not None and not isinstance(v, dict)]
    place = (cert.get("subject") or {}).get("alleged_place")
    if place:
        head.append(("Alleged place", f"{place['lat']}, {place['lon']}"))
    for label, text in head:
        _row(pdf, label, str(text))
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, "Findings", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 8.5)
    findings = dict(cert["findings"])
    statement = findings.pop("statement", None)
    if statement:
        pdf.set_font("Helvetica", "B", 9.5)
        pdf.multi_cell(0, 5, _latin(statement), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("Helvetica", "", 8.5)
    for label, text in _lines(findings):
        _row(pdf, label, text, width=55, height=4.2)
    # The map shrinks (down to 60 mm) to keep the certificate on one page; below that it moves on.
    room = pdf.h - pdf.b_margin - pdf.get_y() - 2 - SIGNATURE_MM
    if room < 60:
        pdf.add_page()
        room = 90
    pdf.ln(2)
    top, map_h = pdf.get_y(), min(90.0, room)
    draw_map(pdf, cert.get("map") or {}, pdf.l_margin, top, pdf.epw, map_h)
    pdf.set_xy(pdf.l_margin, top + map_h + 2)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, "Signature", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    y = pdf.get_y()
    _qr(pdf, cert["verification_url"], 210 - pdf.r_margin - 34, y, 34)
    pdf.set_font("Helvetica", "", 8)
    for label, text in (("Algorithm", sig["algorithm"]), ("Key id", sig["key_id"]),
                        ("Verification", cert["verification_url"])):
        _row(pdf, label, text, width=25, height=4.5, right=40)
    pdf.set_font("Courier", "", 7.5)
    pdf.multi_cell(150, 3.8, _latin("Signature " + sig["value"]), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "I", 7.5)
    pdf.multi_cell(150, 3.6, (
        "The signed record is the attached file certificate.json (canonical JSON, Ed25519). The whole PDF is "
        "sealed as well: changing any byte of it or of the JSON makes verification fail. Verify by uploading "
        "either file to POST /v1/certificates/verify or with `vigil certificates verify FILE`."),
        new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())


def _row(pdf: FPDF, label: str, text: str, width: float = 38, height: float = 5, right: float = 0) -> None:
    pdf.set_x(pdf.l_margin)
    style = pdf.font_style
    pdf.set_font(style="B")
    pdf.cell(width, height, _latin(label))
    pdf.set_font(style=style)
    pdf.multi_cell(pdf.epw - width - right, height, _latin(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
