"""A customer's profile (pure): who the assistance centre calls, in which order, and where help is sent.

:func:`validate` is the one authority on what a profile may hold; the API's JSON Schema repeats the same
patterns and bounds (imported from here) so that the document and the server agree. Phone numbers are
E.164 once normalised: ``+``, country code, subscriber number, 7 to 15 digits in all; spaces, dots,
dashes, slashes and parentheses between the digits are accepted on input and dropped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from dataclasses import dataclass

from accounts.service import check_email
from vigil.errors import RejectedInput

#: One line of text: no control characters, at least one character that is not a space. Explicit ranges,
#: so Python and JSON Schema (ECMA 262) read it alike.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$"
#: Several lines (newlines allowed, other control characters not).
NOTE_PATTERN = r"^[^\x00-\x09\x0b-\x1f\x7f]*$"
#: ``+``, a non-zero digit, then 6-14 digits, up to two separators between digits.
PHONE_PATTERN = r"^\+[1-9](?:[ ./()-]{0,2}[0-9]){6,14}$"
POSTAL_CODE_PATTERN = r"^[A-Za-z0-9](?:[ -]?[A-Za-z0-9]){1,9}$"
#: ISO 3166-1 alpha-2, upper case.
COUNTRY_PATTERN = r"^[A-Z]{2}$"
#: An ISO 639 language, optionally with a region (BCP 47 subset): ``fi``, ``sv-FI``.
LANGUAGE_PATTERN = r"^[a-z]{2,3}(?:-[A-Z]{2})?$"

CUSTOMER_ID_MAX = 64  # as the device owner in the API's paths
NAME_MAX = 120
STREET_MAX = 200
CITY_MAX = 100
RELATION_MAX = 60
INSTRUCTIONS_MAX = 1000
#: Contacts called in turn after the customer; an alarm centre rarely works through more than a few.
MAX_CONTACTS = 5

_TEXT, _NOTE, _PHONE = re.compile(TEXT_PATTERN), re.compile(NOTE_PATTERN), re.compile(PHONE_PATTERN)
_POSTAL, _COUNTRY = re.compile(POSTAL_CODE_PATTERN), re.compile(COUNTRY_PATTERN)
_LANGUAGE = re.compile(LANGUAGE_PATTERN)


@dataclass(frozen=True, slots=True)
class Contact:
    """Someone to call about the customer's alarms: relation ("daughter", "neighbour"); ``keyholder``:
    can let help in."""

    name: str
    phone: str
    relation: str
    keyholder: bool = False


@dataclass(frozen=True, slots=True)
class Profile:
    """A customer's profile. ``lat``/``lon`` (WGS84 degrees) place the address on the map: both or neither.
    ``contacts`` are in calling order. The timestamps and ``updated_by`` are set by the store."""

    customer_id: str
    display_name: str
    street: str
    postal_code: str
    city: str
    country: str
    phone: str
    language: str
    lat: float | None = None
    lon: float | None = None
    email: str | None = None
    instructions: str | None = None
    contacts: tuple[Contact, ...] = ()
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    updated_by: str | None = None


def _text(value: str, field: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit or not _TEXT.fullmatch(value):
        raise RejectedInput(f"invalid_{field}", f"{field}: 1-{limit} characters, not blank, no control characters")
    return value


def normalise_phone(value: str, field: str = "phone") -> str:
    """The E.164 form (``+`` and digits) of a phone number; :class:`RejectedInput` ``invalid_phone``."""
    if not isinstance(value, str) or not _PHONE.fullmatch(value):
        raise RejectedInput("invalid_phone", f"{field}: an international number, e.g. +358 40 123 4567 "
                                             f"(+, country code, 7-15 digits)")
    return "+" + "".join(ch for ch in value if ch.isdigit())


def _contact(c: Contact, i: int) -> Contact:
    return Contact(name=_text(c.name, "contact_name", NAME_MAX), phone=normalise_phone(c.phone, f"contacts[{i}].phone"),
                   relation=_text(c.relation, "contact_relation", RELATION_MAX), keyholder=bool(c.keyholder))


def validate(p: Profile) -> Profile:
    """The profile with phones normalised, or :class:`RejectedInput` naming the first bad field
    (``invalid_<field>``, ``invalid_phone``, ``invalid_location``, ``too_many_contacts``)."""
    if not isinstance(p.customer_id, str) or not 1 <= len(p.customer_id) <= CUSTOMER_ID_MAX \
            or not _TEXT.fullmatch(p.customer_id):
        raise RejectedInput("invalid_customer", f"a customer id has 1-{CUSTOMER_ID_MAX} printable characters")
    if not isinstance(p.postal_code, str) or not _POSTAL.fullmatch(p.postal_code):
        raise RejectedInput("invalid_postal_code", "postal_code: 2-10 letters or digits (a space or dash between)")
    if not isinstance(p.country, str) or not _COUNTRY.fullmatch(p.country):
        raise RejectedInput("invalid_country", "country: an ISO 3166-1 alpha-2 code in capitals, e.g. FI")
    if not isinstance(p.language, str) or not _LANGUAGE.fullmatch(p.language):
        raise RejectedInput("invalid_language", "language: an ISO 639 code, optionally with a region: fi, sv-FI")
    if (p.lat is None) != (p.lon is None):
        raise RejectedInput("invalid_location", "give both lat and lon, or neither")
    if p.lat is not None and not (math.isfinite(p.lat) and math.isfinite(p.lon)
                                  and -90 <= p.lat <= 90 and -180 <= p.lon <= 180):
        raise RejectedInput("invalid_location", "lat in [-90, 90], lon in [-180, 180] (degrees)")
    if p.instructions is not None and (len(p.instructions) > INSTRUCTIONS_MAX or not _NOTE.fullmatch(p.instructions)):
        raise RejectedInput("invalid_instructions", f"instructions: at most {INSTRUCTIONS_MAX} characters")
    if len(p.contacts) > MAX_CONTACTS:
        raise RejectedInput("too_many_contacts", f"at most {MAX_CONTACTS} contacts")
    return dataclasses.replace(
        p, display_name=_text(p.display_name, "display_name", NAME_MAX), street=_text(p.street, "street", STREET_MAX),
        city=_text(p.city, "city", CITY_MAX), phone=normalise_phone(p.phone),
        email=None if p.email is None else check_email(p.email),
        contacts=tuple(_contact(c, i) for i, c in enumerate(p.contacts)))


def contacts_json(contacts: tuple[Contact, ...]) -> list[dict]:
    return [dataclasses.asdict(c) for c in contacts]


def contacts_from_json(items: list[dict]) -> tuple[Contact, ...]:
    return tuple(Contact(**item) for item in items)


def as_json(p: Profile) -> dict:
    """The wire form (API, operator history): the address nested, its map position as ``location``."""
    location = None if p.lat is None else {"lat": p.lat, "lon": p.lon}
    return {"customer_id": p.customer_id, "display_name": p.display_name,
            "address": {"street": p.street, "postal_code": p.postal_code, "city": p.city, "country": p.country,
                        "location": location},
            "phone": p.phone, "email": p.email, "language": p.language, "instructions": p.instructions,
            "contacts": contacts_json(p.contacts), "created_at": p.created_at, "updated_at": p.updated_at,
            "updated_by": p.updated_by}


def from_json(customer_id: str, body: dict) -> Profile:
    """A :class:`Profile` from the wire form (not yet validated)."""
    address = body["address"]
    location = address.get("location") or {}
    return Profile(customer_id=customer_id, display_name=body["display_name"], street=address["street"],
                   postal_code=address["postal_code"], city=address["city"], country=address["country"],
                   lat=location.get("lat"), lon=location.get("lon"), phone=body["phone"], email=body.get("email"),
                   language=body["language"], instructions=body.get("instructions"),
                   contacts=tuple(Contact(**c) for c in body.get("contacts") or ()))
