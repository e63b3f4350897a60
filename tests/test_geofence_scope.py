"""Which fences apply to which devices (pure), and records → core fences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geofence import AntiFlap, CircleFence, PolygonFence
from geofence.scope import FenceScope, fence_of
from vigil.errors import RejectedInput

# Devices 1-2 alice's cars, 3 bob's car, 4 alice's pet, 5 a car without owner.
DEVICES = dict(device=[1, 2, 3, 4, 5], device_is_car=[True, True, True, False, True],
               device_owner=["alice", "alice", "bob", "alice", None])
# Fence 10: alice's cars; 11: only car 2; 12: pet 4; 13: bob's cars.
FENCES = dict(fence_id=[10, 11, 12, 13], scope=["customer", "vehicle", "pet", "customer"],
              fence_owner=["alice", "alice", "alice", "bob"], fence_device=[None, 2, 4, None])


def test_allowed_pairs_follow_the_scopes():
    scope = FenceScope.build(**FENCES, **DEVICES)
    device, fence = np.meshgrid([1, 2, 3, 4, 5, 99], [10, 11, 12, 13, 77], indexing="ij")
    ok = scope.allowed(device.ravel(), fence.ravel()).reshape(device.shape)
    assert {(int(d), int(f)) for d, f in zip(device[ok], fence[ok])} == {
        (1, 10), (2, 10), (2, 11), (3, 13), (4, 12)}
    assert scope.relevant([1, 2, 3, 4, 5, 99]).tolist() == [True, True, True, True, False, False]
    assert scope.known([1, 5, 6]).tolist() == [True, True, False]


def test_no_fences_no_devices():
    empty = FenceScope.build(fence_id=[], scope=[], fence_owner=[], fence_device=[], device=[], device_is_car=[],
                             device_owner=[])
    assert empty.relevant([1, 2]).tolist() == [False, False] and empty.allowed([1], [2]).tolist() == [False]
    assert FenceScope.build(**FENCES, device=[], device_is_car=[], device_owner=[]).allowed([1], [10]).tolist() == [False]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_dense_and_sparse_device_codes_agree_with_a_plain_reference(data):
    n_dev = data.draw(st.integers(1, 30))
    spread = data.draw(st.sampled_from([1, 10**9]))         # dense codes use the lookup table, sparse do not
    codes = np.unique(np.array(data.draw(st.lists(st.integers(0, 60), min_size=n_dev, max_size=n_dev))) * spread)
    owners = data.draw(st.lists(st.sampled_from(["a", "b", "c", None]), min_size=len(codes), max_size=len(codes)))
    cars = data.draw(st.lists(st.booleans(), min_size=len(codes), max_size=len(codes)))
    n_f = data.draw(st.integers(0, 8))
    scopes = data.draw(st.lists(st.sampled_from(["customer", "vehicle", "pet"]), min_size=n_f, max_size=n_f))
    f_owner = data.draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n_f, max_size=n_f))
    f_dev = [None if s == "customer" else int(data.draw(st.sampled_from(codes))) for s in scopes]
    scope = FenceScope.build(fence_id=list(range(100, 100 + n_f)), scope=scopes, fence_owner=f_owner,
                             fence_device=f_dev, device=codes, device_is_car=cars, device_owner=owners)
    info = {int(c): (o, car) for c, o, car in zip(codes, owners, cars)}

    def applies(d, f):
        if not 100 <= f < 100 + n_f or d not in info:
            return False
        i = f - 100
        return f_dev[i] == d if scopes[i] != "customer" else info[d][1] and info[d][0] == f_owner[i]

    probe = np.concatenate([codes, [7 * spread + 3]])
    for f in range(99, 101 + n_f):
        assert scope.allowed(probe, np.full(len(probe), f)).tolist() == [applies(int(d), f) for d in probe]
    assert scope.relevant(probe).tolist() == [any(applies(int(d), f) for f in range(100, 100 + n_f)) for d in probe]


def test_records_become_core_fences():
    circle = fence_of(fence_id=3, kind="circle", geometry={"type": "Point", "coordinates": [9.19, 45.46]},
                      radius_m=150.0, name="home", anti_flap={"hysteresis_m": 40})
    assert circle == CircleFence(3, 45.46, 9.19, 150.0, "home", AntiFlap(hysteresis_m=40))
    ring = [[9.18, 45.46], [9.2, 45.46], [9.2, 45.475], [9.18, 45.46]]
    poly = fence_of(fence_id=4, kind="polygon", geometry={"type": "Polygon", "coordinates": [ring]}, radius_m=None,
                    name="", anti_flap={})
    assert isinstance(poly, PolygonFence) and poly.anti_flap == AntiFlap()


@pytest.mark.parametrize("kind, geometry, radius, anti_flap, reason", [
    ("polygon", {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}, None, {}, "invalid_geometry"),
    ("polygon", {"type": "Polygon", "coordinates": [[[0, 0], [181, 0], [1, 1], [0, 0]]]}, None, {}, "invalid_geometry"),
    ("polygon", {"type": "Polygon", "coordinates": [["a", "b", "c", "d"]]}, None, {}, "invalid_geometry"),
    ("circle", {"type": "Point", "coordinates": [0, 0]}, 0.0, {}, "radius_out_of_range"),
    ("circle", {"type": "Point", "coordinates": [200, 0]}, 10.0, {}, "invalid_geometry"),
    ("circle", {"type": "Point", "coordinates": [0]}, 10.0, {}, "invalid_geometry"),
    ("circle", {"type": "Point", "coordinates": [0, 0]}, 10.0, {"speed": 1}, "invalid_anti_flap"),
    ("circle", {"type": "Point", "coordinates": [0, 0]}, 10.0, {"hysteresis_m": -1}, "invalid_anti_flap"),
    ("line", {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, None, {}, "invalid_geometry"),
])
def test_bad_records_are_refused_with_a_reason(kind, geometry, radius, anti_flap, reason):
    with pytest.raises(RejectedInput) as err:
        fence_of(fence_id=1, kind=kind, geometry=geometry, radius_m=radius, name="", anti_flap=anti_flap)
    assert err.value.reason == reason
