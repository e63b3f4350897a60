"""Devices of the caller (cars, pets, home kits) with their activation status; operators manage ownership."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from accounts import ownership
from accounts.tokens import Caller
from api import access
from api.access import problem_example
from vigil.errors import Conflict

router = APIRouter(tags=["devices"])

NOT_FOUND = problem_example(404, "not-found", "device not found", "device 'pet-0001' not found",
                            "no such device, or not the caller's")
REFUSED = problem_example(409, "invalid-transition", "conflict with the current state",
                          "a returned device cannot become active",
                          "the change is not allowed in the device's state (reason in `type`)")


class Device(BaseModel):
    device_id: str = Field(examples=["car-00001"])
    kind: Literal["car", "home", "pet"]
    owner: str | None = Field(description="customer id", examples=["cust-1"])
    status: Literal["provisioned", "active", "suspended", "returned"] = Field(
        description="only an active device may send data")
    timezone: str = Field(examples=["Europe/Helsinki"])


class DevicePage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [{"device_id": "pet-0001", "kind": "pet", "owner": "cust-1", "status": "active",
                   "timezone": "Europe/Helsinki"}], "limit": 50, "offset": 0, "next_offset": None}]})

    items: list[Device]
    limit: int
    offset: int
    next_offset: int | None


class StatusChange(BaseModel):
    status: Literal["provisioned", "active", "suspended", "returned"] = Field(examples=["suspended"])


class OwnerChange(BaseModel):
    customer_id: str = Field(min_length=1, max_length=64, examples=["cust-1"])


def _view(d: ownership.OwnedDevice) -> Device:
    return Device(device_id=d.device_id, kind=d.kind, owner=d.owner, status=d.status, timezone=d.timezone)


@router.get("/v1/devices", response_model=DevicePage, responses=access.RESPONSES,
            summary="The caller's devices (every device for an operator), by id")
async def list_devices(
    request: Request, kind: Literal["car", "home", "pet"] | None = Query(None),
    limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=1_000_000),
    owner: str | None = Depends(access.customer_scope),
) -> DevicePage:
    rows = await ownership.list_devices(request.app.state.db, owner=owner, kind=kind, limit=limit + 1,
                                        offset=offset)
    return DevicePage(items=[_view(d) for d in rows[:limit]], limit=limit, offset=offset,
                      next_offset=offset + limit if len(rows) > limit else None)


@router.get("/v1/devices/{device_id}", response_model=Device, responses=access.RESPONSES | NOT_FOUND,
            summary="One of the caller's devices with its activation status")
async def get_device(request: Request, device_id: access.DeviceId,
                     owner: str | None = Depends(access.customer_scope)) -> Device:
    return _view(await ownership.get_device(request.app.state.db, device_id, owner=owner))


@router.post("/v1/devices/{device_id}/activate", response_model=Device,
             responses=access.RESPONSES | NOT_FOUND | REFUSED,
             summary="Activate a provisioned device the caller owns (it may then send data)")
async def activate(request: Request, device_id: access.DeviceId,
                   owner: str | None = Depends(access.customer_scope)) -> Device:
    db = request.app.state.db
    current = await ownership.get_device(db, device_id, owner=owner)
    if current.status == "active":
        return _view(current)
    if current.status != "provisioned":
        raise Conflict("invalid_transition", f"a {current.status} device is reactivated by the assistance centre")
    return _view(await ownership.change_status(db, device_id, status="active", owner=owner))


@router.put("/v1/operator/devices/{device_id}/owner", response_model=Device,
            responses=access.OPERATOR_RESPONSES | NOT_FOUND | REFUSED,
            summary="Operator: give a provisioned device to a customer")
async def assign_owner(request: Request, body: OwnerChange, device_id: access.DeviceId,
                       caller: Caller = Depends(access.operator_only)) -> Device:
    return _view(await ownership.assign(request.app.state.db, device_id, customer_id=body.customer_id))


@router.post("/v1/operator/devices/{device_id}/status", response_model=Device,
             responses=access.OPERATOR_RESPONSES | NOT_FOUND | REFUSED,
             summary="Operator: suspend, reactivate, mark returned or re-provision a device")
async def set_status(request: Request, body: StatusChange, device_id: access.DeviceId,
                     caller: Caller = Depends(access.operator_only)) -> Device:
    return _view(await ownership.change_status(request.app.state.db, device_id, status=body.status, owner=None))
