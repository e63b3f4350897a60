"""The city simulator's customer profiles: addresses from the bundled Helsinki extract near each home,
deterministic in the seed, valid, and seeded once per customer into PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import numpy as np
import pytest

from customers import get_profile, put_profile, validate
from customers.addresses import AddressBook, nearest_addresses, read_address_book
from customers.demo import customer_homes, demo_profiles, seed_city
from roads import bundled_pbf, load_graph
from simulators.city import City, CityConfig
from simulators.city_publisher import provision
from simulators.network import prepare

T0 = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.timezone.utc)


def _metres(lat1, lon1, lat2, lon2):
    north = np.radians(lat2 - lat1) * 6_371_008.8
    east = np.radians(lon2 - lon1) * 6_371_008.8 * np.cos(np.radians(lat1))
    return np.hypot(east, north)


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> AddressBook:
    return read_address_book(bundled_pbf(), cache_dir=tmp_path_factory.mktemp("addresses"))


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> City:
    graph, _ = load_graph(bundled_pbf(), "driving", cache_dir=tmp_path_factory.mktemp("roads"))
    cfg = CityConfig(cars=12, pets=5, homes=8, seed=4)
    return City(cfg, prepare(graph, n_places=30, seed=4), start_ms=int(time.time()) * 1000)


def test_the_address_book_holds_tagged_buildings_and_named_streets(book, tmp_path):
    # The bundled extract: 87 buildings with a street and house number; street names on most ways.
    assert len(book.b_lat) == 87 and len(book.s_lat) > 1000
    assert {"Unioninkatu", "Mannerheimintie"} <= set(book.b_street)
    assert "Pohjoisesplanadi" in set(book.s_name)
    assert set(book.b_postcode) - {""} <= {f"00{n:03d}" for n in range(1000)}
    cached = read_address_book(bundled_pbf(), cache_dir=tmp_path)
    again = read_address_book(bundled_pbf(), cache_dir=tmp_path)  # from the .npz
    assert list(tmp_path.glob("*-addresses-*.npz"))
    for field in dataclasses.fields(AddressBook):
        assert list(getattr(again, field.name)) == list(getattr(cached, field.name)), field.name


def test_a_home_beside_an_addressed_building_takes_its_address(book):
    i = int(np.flatnonzero((book.b_street == "Unioninkatu") & (book.b_number == "29"))[0])
    far = (60.1800, 24.9200)  # west of the extract's tagged buildings, beside streets
    got = nearest_addresses([book.b_lat[i] + 0.0002, far[0]], [book.b_lon[i], far[1]], book,
                            np.random.default_rng(1))
    assert list(got.source) == ["building", "street"]
    assert got.street[0] == "Unioninkatu 29" and got.postal_code[0] == book.b_postcode[i] == "00170"
    name, number = got.street[1].rsplit(" ", 1)
    assert name in set(book.s_name) and 1 <= int(number) <= 79
    nearest = np.argmin(_metres(far[0], far[1], book.s_lat, book.s_lon))
    assert name == book.s_name[nearest]
    assert got.postal_code[1] != ""   # from the nearest building with a postal code


def test_customer_homes_prefer_the_home_kit_then_the_pet(city):
    owners = [f"c{k}" for k in range(12)] + [f"c{k}" for k in range(5)] + [f"c{k}" for k in range(8)]
    names, lat, lon = customer_homes(city, owners)
    assert names == [f"c{k}" for k in range(12)]
    np.testing.assert_array_equal(lat[:8], city.homes.lat)        # customers 0-7 have a home kit
    np.testing.assert_array_equal(lon[:8], city.homes.lon)
    graph = city.fleet.net.graph
    for k in range(8, 12):                                         # cars only: on a street node
        assert np.min(_metres(lat[k], lon[k], graph.lat, graph.lon)) < 1e-6
    pet_only = customer_homes(city, [None] * 12 + ["p"] * 5 + [None] * 8)
    assert pet_only[0] == ["p"] and pet_only[1][0] == city.pets.home_lat[0]


def test_demo_profiles_are_valid_near_home_and_deterministic(city, book):
    names, lat, lon = customer_homes(city, [f"c{k % 12}" for k in range(len(city.devices))])
    profiles = demo_profiles(names, lat, lon, book, seed=4)
    assert demo_profiles(names, lat, lon, book, seed=4) == profiles
    assert demo_profiles(names, lat, lon, book, seed=5) != profiles
    assert [validate(p) for p in profiles] == profiles             # already E.164, within bounds
    for p, la, lo in zip(profiles, lat, lon):
        assert (p.lat, p.lon) == (round(la, 6), round(lo, 6))
        assert (p.city, p.country) == ("Helsinki", "FI") and p.postal_code.startswith("00")
        assert 2 <= len(p.contacts) <= 3 and p.contacts[0].keyholder
        assert p.phone.startswith("+358") and len(p.phone) == 13
        street = p.street.rsplit(" ", 1)[0]
        assert street in set(book.b_street) | set(book.s_name)
    assert len({p.display_name for p in profiles}) > 6


async def test_seed_city_gives_each_customer_one_profile_and_keeps_edits(db, city, tmp_path):
    await provision(db, city, own=[], first_owner="demo-customer")
    added = await seed_city(db, city, pbf=None, cache_dir=tmp_path, now=T0)
    assert added == 12   # max(cars, pets, homes) customers
    async with db.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM customers c WHERE EXISTS"
                                 " (SELECT 1 FROM devices d WHERE d.owner = c.customer_id)")
        assert (await cur.fetchone())[0] == 12
    demo = await get_profile(db, customer_id="demo-customer")
    assert (demo.lat, demo.lon) == (round(city.homes.lat[0], 6), round(city.homes.lon[0], 6))
    assert demo.updated_by == "demo" and demo.created_at == T0
    await put_profile(db, dataclasses.replace(demo, display_name="Edited in the app"), actor="demo", now=T0)
    assert await seed_city(db, city, pbf=None, cache_dir=tmp_path, now=T0) == 0
    assert (await get_profile(db, customer_id="demo-customer")).display_name == "Edited in the app"
