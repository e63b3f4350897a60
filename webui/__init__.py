"""The two web pages served by the API: the customer app (``/app``) and the assistance-centre console
(``/console``), with the street map they draw on (``/v1/map/roads``).

Front-end libraries come from the npm registry, installed by ``make web`` into ``web/node_modules`` (never
fetched at run time); :func:`install` mounts what the pages need under ``/static``.
"""

from webui.mount import install

__all__ = ["install"]
