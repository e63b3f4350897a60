"""PostgreSQL adapter of customer profiles (table ``customers``, migration 0012).

Services take keyword arguments and the clock (``now``, UTC) from the caller. Every write goes through
:func:`customers.model.validate`.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from customers.model import Profile, contacts_from_json, contacts_json, validate
from storage.db import Database
from vigil.errors import NotFound

_COLUMNS = ("customer_id", "display_name", "street", "postal_code", "city", "country", "lat", "lon", "phone",
            "email", "language", "instructions", "contacts", "created_at", "updated_at", "updated_by")
_WRITTEN = _COLUMNS[:13]

#: The customer of an alarm's device (``d`` = devices) as a JSON object merged into the alarm snapshot
#: (alarms/store.py): ``customer_name`` and ``address`` (null without a profile). A scalar subquery, so
#: every query that builds a snapshot gets it without another join.
ALARM_CUSTOMER_JSON = (
    "coalesce((SELECT jsonb_build_object('customer_name', c.display_name, 'address', jsonb_build_object("
    "'street', c.street, 'postal_code', c.postal_code, 'city', c.city, 'country', c.country, 'location',"
    " CASE WHEN c.lat IS NULL THEN NULL ELSE jsonb_build_object('lat', c.lat, 'lon', c.lon) END))"
    " FROM customers c WHERE c.customer_id = d.owner), '{\"customer_name\": null, \"address\": null}'::jsonb)"
)


def _profile(row: dict) -> Profile:
    return Profile(**{**row, "contacts": contacts_from_json(row["contacts"])})


def _values(p: Profile) -> list:
    return [getattr(p, c) if c != "contacts" else Jsonb(contacts_json(p.contacts)) for c in _WRITTEN]


async def get_profile(db: Database, *, customer_id: str) -> Profile:
    """The customer's profile; :class:`NotFound` when none was set."""
    async with db.connection() as conn:
        profile = await find_profile(conn, customer_id)
    if profile is None:
        raise NotFound("customer profile", customer_id)
    return profile


async def put_profile(db: Database, profile: Profile, *, actor: str, now: dt.datetime) -> Profile:
    """Create or replace the profile (validated; :class:`~vigil.errors.RejectedInput` otherwise). ``actor``
    is who changed it (the login's username, or ``cli``/``demo``). Returns the stored profile."""
    p = validate(profile)
    updates = ", ".join(f"{c} = excluded.{c}" for c in _WRITTEN[1:])
    async with db.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            f"INSERT INTO customers ({', '.join(_WRITTEN)}, created_at, updated_at, updated_by)"
            f" VALUES ({', '.join(['%s'] * len(_WRITTEN))}, %s, %s, %s) ON CONFLICT (customer_id) DO UPDATE SET"
            f" {updates}, updated_at = excluded.updated_at, updated_by = excluded.updated_by"
            f" RETURNING {', '.join(_COLUMNS)}", [*_values(p), now, now, actor])
        return _profile(await cur.fetchone())


async def add_missing(db: Database, profiles: Iterable[Profile], *, actor: str, now: dt.datetime) -> int:
    """Insert the profiles of customers that have none, in one statement (demo seeding: a profile someone
    edited is kept). Returns how many were inserted."""
    rows = [_values(validate(p)) for p in profiles]
    if not rows:
        return 0
    columns = list(zip(*rows))
    types = ["text"] * 6 + ["float8", "float8"] + ["text"] * 4 + ["jsonb"]
    async with db.connection() as conn:
        cur = await conn.execute(
            f"INSERT INTO customers ({', '.join(_WRITTEN)}, created_at, updated_at, updated_by)"
            f" SELECT *, %s, %s, %s FROM unnest({', '.join(f'%s::{t}[]' for t in types)})"
            " ON CONFLICT (customer_id) DO NOTHING", [now, now, actor, *map(list, columns)])
        return cur.rowcount


async def find_profile(conn: psycopg.AsyncConnection, customer_id: str) -> Profile | None:
    """The profile on an open connection (for a service that reads more in the same transaction), or None."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM customers WHERE customer_id = %s", (customer_id,))
    row = await cur.fetchone()
    return None if row is None else _profile(row)
