"""Shared kernel of Vigil: settings, the error tree, the columnar fix batch and the command line.

Public API: :class:`vigil.settings.Settings`, :class:`vigil.errors.VigilError` and subclasses,
:class:`vigil.batch.FixBatch`.
"""

__version__ = "0.1.0"
