"""Tracks and fences for the geofence service tests: geodesic offsets, square rings, MQTT publishing."""

from __future__ import annotations

import json

import aiomqtt
import numpy as np
from pyproj import Geod

from simulators.cars import encode_fix_message
from vigil.settings import parse_mqtt_url

GEOD = Geod(ellps="WGS84")


def offset(lat, lon, east_m, north_m):
    """Point(s) ``east_m``/``north_m`` metres from (lat, lon), geodesically: (lat, lon) arrays, degrees."""
    east_m, north_m = np.asarray(east_m, float), np.asarray(north_m, float)
    dist = np.hypot(east_m, north_m)
    az = np.degrees(np.arctan2(east_m, north_m))
    lon2, lat2, _ = GEOD.fwd(np.broadcast_to(lon, dist.shape), np.broadcast_to(lat, dist.shape), az, dist)
    return np.asarray(lat2, float), np.asarray(lon2, float)


def square(lat, lon, half_m) -> list[list[float]]:
    """A closed GeoJSON ring (lon, lat), a square of side 2 × ``half_m`` m around (lat, lon), anticlockwise."""
    e = np.array([-1, 1, 1, -1, -1]) * half_m
    n = np.array([-1, -1, 1, 1, -1]) * half_m
    la, lo = offset(lat, lon, e, n)
    ring = [[float(x), float(y)] for x, y in zip(lo, la)]
    ring[-1] = ring[0]
    return ring


def fixes(t0_ms: int, lat, lon, *, every_s: float, accuracy_m=5.0, speed_kmh=0.0) -> list[dict]:
    lat, lon = np.atleast_1d(lat), np.atleast_1d(lon)
    acc = np.broadcast_to(np.asarray(accuracy_m, float), lat.shape)
    return [{"ts": int(t0_ms + i * every_s * 1000), "lat": float(lat[i]), "lon": float(lon[i]),
             "speed_kmh": speed_kmh, "heading_deg": 0.0, "accuracy_m": float(acc[i]), "ignition": True}
            for i in range(len(lat))]


async def publish(mqtt_url: str, kind: str, device: str, track: list[dict], seq0: int = 1, per_message: int = 20) -> int:
    """Publish ``track`` as Vigil v1 fix messages of ``kind`` (car or pet); returns the next seq."""
    host, port = parse_mqtt_url(mqtt_url)
    async with aiomqtt.Client(host, port) as client:
        for k in range(0, len(track), per_message):
            part = track[k:k + per_message]
            if kind == "car":
                payload = encode_fix_message(device, seq0 + k, part)
            else:
                payload = json.dumps({"v": 1, "device": device, "seq": seq0 + k, "fixes": [
                    {"ts": f["ts"], "lat": round(f["lat"], 7), "lon": round(f["lon"], 7),
                     "accuracy_m": f["accuracy_m"]} for f in part]}).encode()
            await client.publish(f"vigil/v1/{kind}/{device}/fix", payload, qos=1)
    return seq0 + len(track)
