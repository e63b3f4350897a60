"""PostgreSQL storage through psycopg 3: migrations, devices, fixes (binary COPY), dead letters.

Public API: :class:`Database`, :class:`FixWriter`, :class:`EmbeddedPostgres`, and the modules
:mod:`storage.devices`, :mod:`storage.fixes`, :mod:`storage.deadletters`.
"""

from storage.db import Database
from storage.embedded import EmbeddedPostgres
from storage.fixes import FixWriter

__all__ = ["Database", "EmbeddedPostgres", "FixWriter"]
