"""The HTTP API. Public API: :func:`api.app.create_app`."""
