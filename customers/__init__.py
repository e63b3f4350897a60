"""Customer profiles: who the assistance centre calls (the customer, then contacts in order) and where
help is sent (postal address, its map position). A customer is the ``customer_id`` of accounts and the
``owner`` of devices (docs/alarms.md, "Customers").

Public API: :class:`Profile`, :class:`Contact`, :func:`validate` (:mod:`customers.model`); the store
functions :func:`get_profile`, :func:`put_profile`, :func:`add_missing` (:mod:`customers.store`); demo
profiles of the city simulator in :mod:`customers.demo`.
"""

from customers.model import Contact, Profile, as_json, from_json, validate
from customers.store import add_missing, get_profile, put_profile

__all__ = ["Contact", "Profile", "add_missing", "as_json", "from_json", "get_profile", "put_profile", "validate"]
