"""Request and response models of the customer-profile routes; the bounds are those of customers.model."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from accounts.service import EMAIL_PATTERN
from customers import model as m

EXAMPLE = {
    "display_name": "Aino Virtanen",
    "address": {"street": "Unioninkatu 29", "postal_code": "00170", "city": "Helsinki", "country": "FI",
                "location": {"lat": 60.1712, "lon": 24.9507}},
    "phone": "+358 40 123 4567", "email": "aino@example.org", "language": "fi",
    "instructions": "Key safe by the back door, code from the centre",
    "contacts": [{"name": "Mikko Virtanen", "phone": "+358 50 765 4321", "relation": "son", "keyholder": True},
                 {"name": "Liisa Korhonen", "phone": "+358 44 222 3333", "relation": "neighbour", "keyholder": False}],
}


class Location(BaseModel):
    model_config = ConfigDict(strict=True)   # a boolean is a boolean, a number a number

    lat: float = Field(ge=-90, le=90, description="WGS84 degrees", examples=[60.1712])
    lon: float = Field(ge=-180, le=180, description="WGS84 degrees", examples=[24.9507])


class Address(BaseModel):
    model_config = ConfigDict(strict=True)   # a boolean is a boolean, a number a number

    street: str = Field(max_length=m.STREET_MAX, pattern=m.TEXT_PATTERN, description="street and house number",
                        examples=["Unioninkatu 29"])
    postal_code: str = Field(pattern=m.POSTAL_CODE_PATTERN, examples=["00170"])
    city: str = Field(max_length=m.CITY_MAX, pattern=m.TEXT_PATTERN, examples=["Helsinki"])
    country: str = Field(pattern=m.COUNTRY_PATTERN, description="ISO 3166-1 alpha-2", examples=["FI"])
    location: Location | None = Field(None, description="where the address is, for the console's map")


class EmergencyContact(BaseModel):
    model_config = ConfigDict(strict=True)   # a boolean is a boolean, a number a number

    name: str = Field(max_length=m.NAME_MAX, pattern=m.TEXT_PATTERN, examples=["Mikko Virtanen"])
    phone: str = Field(pattern=m.PHONE_PATTERN, description="international format; stored as E.164",
                       examples=["+358 50 765 4321"])
    relation: str = Field(max_length=m.RELATION_MAX, pattern=m.TEXT_PATTERN, examples=["son"])
    keyholder: bool = Field(False, description="can let help in")


class ProfileIn(BaseModel):
    model_config = ConfigDict(strict=True, json_schema_extra={"examples": [EXAMPLE]})

    display_name: str = Field(max_length=m.NAME_MAX, pattern=m.TEXT_PATTERN, examples=["Aino Virtanen"])
    address: Address
    phone: str = Field(pattern=m.PHONE_PATTERN, description="the customer's own number; stored as E.164",
                       examples=["+358 40 123 4567"])
    email: str | None = Field(None, max_length=254, pattern=EMAIL_PATTERN, examples=["aino@example.org"])
    language: str = Field(pattern=m.LANGUAGE_PATTERN, description="ISO 639 (BCP 47 subset): the language to speak",
                          examples=["fi"])
    instructions: str | None = Field(None, max_length=m.INSTRUCTIONS_MAX, pattern=m.NOTE_PATTERN,
                                     description="for whoever is sent: access, pets, health")
    contacts: list[EmergencyContact] = Field(default_factory=list, max_length=m.MAX_CONTACTS,
                                    description="emergency and verification contacts, in calling order")


class ProfileOut(ProfileIn):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "customer_id": "cust-1", **EXAMPLE, "phone": "+358401234567", "updated_by": "alice",
        "contacts": [{**c, "phone": c["phone"].replace(" ", "")} for c in EXAMPLE["contacts"]],
        "created_at": "2026-05-04T09:00:00Z", "updated_at": "2026-05-04T09:00:00Z"}]})

    customer_id: str = Field(examples=["cust-1"])
    created_at: dt.datetime
    updated_at: dt.datetime
    updated_by: str = Field(description="the login (or cli, demo) that last changed it", examples=["alice"])
