"""certificates: signed, verifiable statements about a car (docs/certificates.md).

Pure (no database, no clock, no network); the key store is the one piece that touches files.

Public API:
    position: FineAssistConfig, estimate_positions (vectorised estimate + uncertainty radius), STATUS_NAMES
    content: certificate, fine_assist, driving_style, vehicle_usage, period_map (plain dicts to sign)
    usage: usage_summary (vehicle-usage findings from trip columns)
    canonical: canonical_json, parse_canonical (the one byte string that is signed)
    keys: KeyStore (Ed25519 keys, rotation), key_id_of
    signing: sign_document, seal_pdf, verify_document, Verdict
    pdf: render_pdf (fpdf2; map drawn by pdfmap.draw_map, QR code by segno)
"""
