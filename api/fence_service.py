"""Geofence and pet-fence services: validation by the geofence core, customer scoping, storage.

Every function takes ``owner``: the customer the caller acts for, or None for operator scope (everything).
Another customer's fence, car or pet is :class:`NotFound`, exactly like a missing one, so ids of other
customers' objects cannot be probed. Refused input raises :class:`RejectedInput` with the core's reason
and nothing is stored.
"""

from __future__ import annotations

import datetime as dt

from api.geofence_schemas import FenceIn, PetFenceIn
from geofence.scope import fence_of
from geofence.shapes import CircleFence, FenceSet, check_pet_fences
from storage import devices
from storage import geofences as store
from storage.db import Database
from vigil.errors import NotFound, RejectedInput

_KINDS = {"Point": "circle", "Polygon": "polygon"}


def _checked(*, geometry: dict, radius_m: float | None, name: str, anti_flap: dict) -> str:
    """The fence kind, after the core compiled the fence (every geometry and anti-flap check)."""
    kind = _KINDS.get(geometry.get("type") if isinstance(geometry, dict) else None)
    if kind is None:
        raise RejectedInput("invalid_geometry", "geometry must be a GeoJSON Polygon, or a Point with radius_m")
    if kind == "polygon" and radius_m is not None:
        raise RejectedInput("invalid_geometry", "radius_m belongs to a Point (circle), not a Polygon")
    FenceSet.compile([fence_of(fence_id=0, kind=kind, geometry=geometry, radius_m=radius_m, name=name,
                               anti_flap=anti_flap)])
    return kind


def _anti_flap(feature) -> dict:
    af = feature.properties.anti_flap
    return af.model_dump(exclude_none=True) if af is not None else {}


async def _device(db: Database, *, owner: str | None, device_id: str, kind: str) -> devices.Device:
    found = (await devices.lookup(db, [device_id])).get(device_id)
    if found is None or found.kind != kind or (owner is not None and found.owner != owner):
        raise NotFound("vehicle" if kind == "car" else kind, device_id)
    return found


def _visible(row: dict | None, *, owner: str | None, pet: bool, ident) -> dict:
    if row is None or (owner is not None and row["owner"] != owner) or (row["scope"] == "pet") != pet:
        raise NotFound("pet fence" if pet else "geofence", str(ident))
    return row


async def _car_fields(db: Database, *, owner: str | None, feature: FenceIn) -> dict:
    props = feature.properties
    anti_flap = _anti_flap(feature)
    kind = _checked(geometry=feature.geometry, radius_m=props.radius_m, name=props.name, anti_flap=anti_flap)
    if owner is not None and props.owner not in (None, owner):
        raise RejectedInput("owner_mismatch", "owner may only be given in operator scope")
    car = None
    if props.vehicle_id is not None:
        car = await _device(db, owner=owner, device_id=props.vehicle_id, kind="car")
    fence_owner = owner or props.owner or (car.owner if car else None)
    if not fence_owner:
        raise RejectedInput("missing_owner", "operator scope: give properties.owner (the customer to notify)")
    if car is not None and car.owner != fence_owner:
        raise NotFound("vehicle", car.device_id)
    return dict(owner=fence_owner, scope="vehicle" if car else "customer", device_code=car.id if car else None,
                name=props.name, kind=kind, geometry=feature.geometry, radius_m=props.radius_m, anti_flap=anti_flap)


async def create_fence(*, db: Database, owner: str | None, feature: FenceIn) -> dict:
    return await store.create_fence(db, **await _car_fields(db, owner=owner, feature=feature))


async def get_fence(*, db: Database, owner: str | None, fence_id: int) -> dict:
    return _visible(await store.get_fence(db, fence_id), owner=owner, pet=False, ident=fence_id)


async def list_fences(*, db: Database, owner: str | None, limit: int, offset: int) -> list[dict]:
    return await store.list_fences(db, owner=owner, scopes=("customer", "vehicle"), limit=limit, offset=offset)


async def update_fence(*, db: Database, owner: str | None, fence_id: int, feature: FenceIn) -> dict:
    current = await get_fence(db=db, owner=owner, fence_id=fence_id)
    fields = await _car_fields(db, owner=owner or current["owner"], feature=feature)
    fields.pop("owner")
    return _visible(await store.update_fence(db, fence_id, **fields), owner=owner, pet=False, ident=fence_id)


async def delete_fence(*, db: Database, owner: str | None, fence_id: int) -> None:
    await get_fence(db=db, owner=owner, fence_id=fence_id)
    if not await store.delete_fence(db, fence_id):
        raise NotFound("geofence", str(fence_id))


async def pet(*, db: Database, owner: str | None, pet_id: str) -> devices.Device:
    return await _device(db, owner=owner, device_id=pet_id, kind="pet")


def _pet_circle(fence_id: int, *, geometry: dict, radius_m: float, name: str, anti_flap: dict) -> CircleFence:
    return fence_of(fence_id=fence_id, kind="circle", geometry=geometry, radius_m=radius_m, name=name,
                    anti_flap=anti_flap)


def _pet_fields(feature: PetFenceIn) -> dict:
    props = feature.properties
    anti_flap = _anti_flap(feature)
    if not isinstance(feature.geometry, dict) or feature.geometry.get("type") != "Point":
        raise RejectedInput("invalid_geometry", "a pet fence is a circle: a GeoJSON Point with radius_m")
    _checked(geometry=feature.geometry, radius_m=props.radius_m, name=props.name, anti_flap=anti_flap)
    check_pet_fences([_pet_circle(0, geometry=feature.geometry, radius_m=props.radius_m, name=props.name,
                                  anti_flap=anti_flap)])
    return dict(name=props.name, geometry=feature.geometry, radius_m=props.radius_m, anti_flap=anti_flap)


def _circles(rows: list[dict]) -> list[CircleFence]:
    return [_pet_circle(r["id"], geometry=r["geometry"], radius_m=r["radius_m"], name=r["name"],
                        anti_flap=r["anti_flap"]) for r in rows]


async def list_pet_fences(*, db: Database, owner: str | None, pet_id: str) -> list[dict]:
    found = await pet(db=db, owner=owner, pet_id=pet_id)
    return await store.list_fences(db, owner=None, scopes=("pet",), device_code=found.id, limit=100, offset=0)


async def add_pet_fence(*, db: Database, owner: str | None, pet_id: str, feature: PetFenceIn) -> dict:
    """Add a fence to a pet: at most 5 (``too_many_fences``), named, radius 20 m – 50 km."""
    found = await pet(db=db, owner=owner, pet_id=pet_id)
    fields = _pet_fields(feature)
    if not found.owner:
        raise RejectedInput("missing_owner", f"pet {pet_id} has no owner to notify")
    new = _pet_circle(0, **fields)
    return await store.add_pet_fence(db, pet_code=found.id, owner=found.owner,
                                     check=lambda rows: check_pet_fences([*_circles(rows), new]), **fields)


async def get_pet_fence(*, db: Database, owner: str | None, pet_id: str, fence_id: int) -> dict:
    found = await pet(db=db, owner=owner, pet_id=pet_id)
    row = _visible(await store.get_fence(db, fence_id), owner=owner, pet=True, ident=fence_id)
    if row["device_code"] != found.id:
        raise NotFound("pet fence", str(fence_id))
    return row


async def update_pet_fence(*, db: Database, owner: str | None, pet_id: str, fence_id: int,
                           feature: PetFenceIn) -> dict:
    await get_pet_fence(db=db, owner=owner, pet_id=pet_id, fence_id=fence_id)
    row = await store.update_fence(db, fence_id, scope="pet", kind="circle",
                                   device_code=(await pet(db=db, owner=owner, pet_id=pet_id)).id,
                                   **_pet_fields(feature))
    return _visible(row, owner=owner, pet=True, ident=fence_id)


async def delete_pet_fence(*, db: Database, owner: str | None, pet_id: str, fence_id: int) -> None:
    await get_pet_fence(db=db, owner=owner, pet_id=pet_id, fence_id=fence_id)
    if not await store.delete_fence(db, fence_id):
        raise NotFound("pet fence", str(fence_id))


async def events(*, db: Database, owner: str | None, device: str | None, fence_id: int | None,
                 start: dt.datetime | None, end: dt.datetime | None, limit: int, offset: int) -> list[dict]:
    """A page of events of ``owner``'s fences. A ``device`` or ``fence_id`` filter naming another customer's
    object is NotFound, as for one that does not exist (an empty page would do too, but 404 is what every
    other route answers for it)."""
    if device is not None:
        found = (await devices.lookup(db, [device])).get(device)
        if found is None or (owner is not None and found.owner != owner):
            raise NotFound("device", device)
    if fence_id is not None:
        fence_owner = await store.fence_owner(db, fence_id)
        if fence_owner is None or (owner is not None and fence_owner != owner):
            raise NotFound("geofence", str(fence_id))
    return await store.list_events(db, owner=owner, device=device, fence_id=fence_id, start=start, end=end,
                                   limit=limit, offset=offset)
