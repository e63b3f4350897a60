"""``vigil accounts profile CUSTOMER_ID``: show or set a customer's profile (address, phone, contacts).

Without field options it prints the profile as JSON. With them it creates the profile or changes the
fields named (``--contact``, repeatable, replaces the whole list in the order given).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json

from vigil.errors import ConfigError, NotFound, RejectedInput

_FIELDS = {"name": "display_name", "street": "street", "postal_code": "postal_code", "city": "city",
           "country": "country", "phone": "phone", "email": "email", "language": "language",
           "instructions": "instructions", "lat": "lat", "lon": "lon"}
_REQUIRED = ("display_name", "street", "postal_code", "city", "phone")


def add_parser(acc_sub) -> None:
    p = acc_sub.add_parser("profile", help="show or set a customer's profile: address, phone, emergency contacts")
    p.add_argument("customer_id", help="the customer id (the owner of its devices)")
    p.add_argument("--name", help="display name, e.g. 'Aino Virtanen'")
    p.add_argument("--street", help="street and house number")
    p.add_argument("--postal-code")
    p.add_argument("--city")
    p.add_argument("--country", help="ISO 3166-1 alpha-2 (default FI for a new profile)")
    p.add_argument("--lat", type=float, help="the address's position, WGS84 degrees (with --lon)")
    p.add_argument("--lon", type=float)
    p.add_argument("--phone", help="international format, e.g. '+358 40 123 4567'")
    p.add_argument("--email")
    p.add_argument("--language", help="ISO 639 code (default fi for a new profile)")
    p.add_argument("--instructions", help="for whoever is sent: door code, key safe, pets")
    p.add_argument("--contact", action="append", metavar="NAME;PHONE;RELATION[;key]",
                   help="an emergency contact, in calling order (repeat; replaces the list); ';key': a keyholder")


def parse_contact(text: str):
    from customers import Contact

    parts = [p.strip() for p in text.split(";")]
    if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] not in ("key", "")):
        raise ConfigError(f"--contact wants NAME;PHONE;RELATION[;key], got {text!r}")
    return Contact(name=parts[0], phone=parts[1], relation=parts[2], keyholder=len(parts) == 4 and parts[3] == "key")


def _changes(args: argparse.Namespace) -> dict:
    changes = {field: getattr(args, arg) for arg, field in _FIELDS.items() if getattr(args, arg) is not None}
    if args.contact is not None:
        changes["contacts"] = tuple(parse_contact(c) for c in args.contact)
    return changes


def _printable(profile) -> str:
    from customers import as_json

    return json.dumps(as_json(profile), default=str, indent=2, ensure_ascii=False)


async def run(settings, args, database) -> int:
    from customers import Profile, get_profile, put_profile

    changes = _changes(args)
    async with database(settings) as db:
        try:
            current = await get_profile(db, customer_id=args.customer_id)
        except NotFound:
            current = None
        if not changes:
            if current is None:
                raise ConfigError(f"customer {args.customer_id!r} has no profile")
            print(_printable(current))
            return 0
        if current is None:
            missing = [f"--{a.replace('_', '-')}" for a, f in _FIELDS.items() if f in _REQUIRED and f not in changes]
            if missing:
                raise ConfigError(f"a new profile needs {', '.join(missing)}")
            profile = Profile(customer_id=args.customer_id, **{"country": "FI", "language": "fi", **changes})
        else:
            profile = dataclasses.replace(current, **changes)
        try:
            stored = await put_profile(db, profile, actor="cli", now=dt.datetime.now(dt.timezone.utc))
        except RejectedInput as exc:
            raise ConfigError(str(exc)) from exc
    print(f"profile of customer {args.customer_id} {'created' if current is None else 'updated'}")
    print(_printable(stored))
    return 0
