"""Unit tests of the pure car simulator model and payload encoding (no network)."""

from __future__ import annotations

import asyncio
import inspect

import msgspec
import numpy as np
import pytest

from simulators import cars
from simulators.cars import (
    DRIVING,
    PARKED,
    STOPPED,
    encode_fix_message,
    fix_topic,
    fixes_from_sample,
    initial_state,
    sample,
    step,
)
from simulators.publisher import run_cars
from vigil.settings import parse_mqtt_url

FIELDS = ("lat", "lon", "heading_deg", "speed_ms", "target_ms", "accel_ms2", "phase", "stop_remaining_s",
          "leg_remaining_m", "leg_end", "ignition")


def _run(n: int, steps: int, seed: int, dt_s: float = 1.0):
    state = initial_state(n, seed=seed)
    rng = np.random.default_rng(seed + 1000)
    samples = []
    for _ in range(steps):
        state = step(state, dt_s, rng)
        samples.append(sample(state, rng))
    return state, samples


def _distance_m(state) -> np.ndarray:
    east, north = cars._offset_m(state.lat, state.lon, state.centre)
    return np.hypot(east, north)


def test_same_seed_identical_arrays():
    a, sa = _run(50, 300, seed=7)
    b, sb = _run(50, 300, seed=7)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for x, y in zip(sa, sb):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def test_different_seed_differs():
    a, _ = _run(50, 100, seed=7)
    b, _ = _run(50, 100, seed=8)
    assert not np.array_equal(a.lat, b.lat)
    assert not np.array_equal(a.speed_ms, b.speed_ms)


def test_initial_state_within_radius():
    state = initial_state(1000, seed=3, centre=(60.1699, 24.9384), radius_m=5000)
    assert state.n == 1000
    assert _distance_m(state).max() <= 5000 * 1.001
    assert ((state.heading_deg >= 0) & (state.heading_deg < 360)).all()
    assert (state.speed_ms == 0).all()
    assert ((state.phase == PARKED) == ~state.ignition).all()


@pytest.fixture(scope="module")
def long_run():
    """200 cars for 2000 one-second steps, with per-step checks gathered as arrays."""
    n, steps, dt = 200, 2000, 1.0
    state = initial_state(n, seed=42)
    rng = np.random.default_rng(43)
    rec = {k: np.empty((steps, n)) for k in ("speed_kmh", "accel", "dist", "heading", "s_speed", "s_heading",
                                             "acc_m", "accel_x", "accel_y", "accel_z")}
    phase = np.empty((steps, n), np.int8)
    ignition = np.empty((steps, n), bool)
    for t in range(steps):
        prev = state.speed_ms
        state = step(state, dt, rng)
        smp = sample(state, rng)
        rec["speed_kmh"][t] = state.speed_kmh
        rec["accel"][t] = (state.speed_ms - prev) / dt
        rec["dist"][t] = _distance_m(state)
        rec["heading"][t] = state.heading_deg
        rec["s_speed"][t] = smp["speed_kmh"]
        rec["s_heading"][t] = smp["heading_deg"]
        rec["acc_m"][t] = smp["accuracy_m"]
        rec["accel_x"][t], rec["accel_y"][t], rec["accel_z"][t] = smp["accel_g"].T
        phase[t] = state.phase
        ignition[t] = state.ignition
    rec["phase"], rec["ignition"] = phase, ignition
    return rec


def test_speeds_plausible(long_run):
    assert long_run["speed_kmh"].min() >= 0
    assert long_run["speed_kmh"].max() <= 150
    assert long_run["s_speed"].min() >= 0
    assert long_run["s_speed"].max() <= 150
    driving = long_run["phase"] == DRIVING
    assert np.median(long_run["speed_kmh"][driving]) > 20  # cars do actually drive


def test_longitudinal_accel_bounded(long_run):
    assert np.abs(long_run["accel"]).max() <= cars.ACCEL_MAX + 1e-9
    assert np.abs(long_run["accel_x"]).max() < 0.4  # g; 2.5 m/s² is ~0.25 g plus sensor noise
    assert np.abs(long_run["accel_y"]).max() < 0.2
    assert np.abs(long_run["accel_z"] - 1.0).max() < 0.1


def test_cars_stay_near_centre(long_run):
    assert long_run["dist"].max() <= 1.5 * 5000


def test_stopped_cars_at_rest(long_run):
    still = long_run["phase"] != DRIVING
    assert still.any()
    assert (long_run["speed_kmh"][still] == 0).all()
    assert (long_run["s_speed"][still] == 0).all()


def test_light_stops_keep_ignition_and_parking_turns_it_off(long_run):
    phase, ignition = long_run["phase"], long_run["ignition"]
    assert (phase == STOPPED).any() and (phase == PARKED).any()
    assert ignition[phase == STOPPED].all()
    assert not ignition[phase == PARKED].any()
    assert ignition[phase == DRIVING].all()
    # every car comes to rest at some time, and some cars park and later drive on
    assert (phase != DRIVING).any(axis=0).mean() > 0.9
    was_parked = (phase[:-1] == PARKED) & (phase[1:] == DRIVING)
    assert was_parked.any()


def test_heading_and_accuracy_ranges(long_run):
    for key in ("heading", "s_heading"):
        assert long_run[key].min() >= 0 and long_run[key].max() < 360
    assert long_run["acc_m"].min() >= 3 and long_run["acc_m"].max() <= 15


def test_gps_noise_is_a_few_metres():
    state = initial_state(500, seed=5)
    smp = sample(state, np.random.default_rng(6))
    east, north = cars._offset_m(smp["lat"], smp["lon"], (0, 0))
    true_east, true_north = cars._offset_m(state.lat, state.lon, (0, 0))
    err = np.hypot(east - true_east, north - true_north)
    assert err.max() < 60 and 1 < np.median(err) < 15


def test_step_rejects_bad_dt():
    with pytest.raises(ValueError, match="dt_s"):
        step(initial_state(2, seed=0), 0.0, np.random.default_rng(0))


def test_fix_topic():
    assert fix_topic("car-0001") == "vigil/v1/car/car-0001/fix"
    for bad in ("", "a/b", "a+", "#"):
        with pytest.raises(ValueError):
            fix_topic(bad)


def test_encode_fix_message_round_trip():
    fixes = [
        {"ts": 1_700_000_000_000, "lat": np.float64(60.123456789), "lon": 24.987654321, "speed_kmh": 42.456,
         "heading_deg": 359.999, "accuracy_m": 4.5, "ignition": np.bool_(True), "accel_g": [0.123, -0.01, 0.998]},
        {"ts": 1_700_000_001_000, "lat": 60.1, "lon": 24.9, "speed_kmh": 0.0, "heading_deg": 90.0,
         "accuracy_m": 15.0, "ignition": False, "accel_g": np.array([0.0, 0.0, 1.0])},
    ]
    decoded = msgspec.json.decode(encode_fix_message("car-7", 3, fixes))
    assert decoded == {
        "v": 1,
        "device": "car-7",
        "seq": 3,
        "fixes": [
            {"ts": 1_700_000_000_000, "lat": 60.1234568, "lon": 24.9876543, "speed_kmh": 42.46, "heading_deg": 0.0,
             "accuracy_m": 4.5, "ignition": True, "accel_g": [0.12, -0.01, 1.0]},
            {"ts": 1_700_000_001_000, "lat": 60.1, "lon": 24.9, "speed_kmh": 0.0, "heading_deg": 90.0,
             "accuracy_m": 15.0, "ignition": False, "accel_g": [0.0, 0.0, 1.0]},
        ],
    }
    assert isinstance(decoded["fixes"][0]["ts"], int)


def test_sample_fixes_encode_exactly():
    state = initial_state(20, seed=9)
    rng = np.random.default_rng(10)
    for _ in range(30):
        state = step(state, 1.0, rng)
    smp = sample(state, rng)
    fixes = fixes_from_sample(smp, 1_700_000_000_123)
    assert len(fixes) == 20
    decoded = msgspec.json.decode(encode_fix_message("car-1", 1, fixes[:5]))
    assert decoded["fixes"] == fixes[:5]
    for i, fix in enumerate(decoded["fixes"]):
        assert fix["ts"] == 1_700_000_000_123
        assert fix["lat"] == pytest.approx(smp["lat"][i], abs=1e-7)
        assert fix["speed_kmh"] == pytest.approx(smp["speed_kmh"][i], abs=0.005)
        assert fix["ignition"] is bool(smp["ignition"][i])
        assert 0 <= fix["heading_deg"] < 360
        assert len(fix["accel_g"]) == 3


def test_encode_rejects_bad_seq():
    with pytest.raises(ValueError, match="seq"):
        encode_fix_message("car-1", -1, [])


def test_parse_mqtt_url():
    assert parse_mqtt_url("mqtt://broker.local:1884") == ("broker.local", 1884)
    assert parse_mqtt_url("mqtt://127.0.0.1") == ("127.0.0.1", 1883)
    for bad in ("http://x:1883", "mqtt://", "mqtt://host:notaport", "localhost:1883"):
        with pytest.raises(ValueError):
            parse_mqtt_url(bad)


def test_run_cars_is_async():
    assert inspect.iscoroutinefunction(run_cars)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("mqtt://127.0.0.1:1", ["car-1"]), {"realtime": False}, "fixes_per_car"),
        (("mqtt://127.0.0.1:1", []), {"fixes_per_car": 1}, "device_ids"),
        (("mqtt://127.0.0.1:1", ["a", "a"]), {"fixes_per_car": 1}, "unique"),
        (("mqtt://127.0.0.1:1", ["a/b"]), {"fixes_per_car": 1}, "device id"),
        (("mqtt://127.0.0.1:1", ["a"]), {"fixes_per_car": 0}, "fixes_per_car"),
        (("mqtt://127.0.0.1:1", ["a"]), {"fixes_per_car": 1, "interval_s": 0}, "interval_s"),
        (("mqtt://127.0.0.1:1", ["a"]), {"fixes_per_car": 1, "fixes_per_message": 0}, "fixes_per_message"),
        (("mqtt://127.0.0.1:1", ["a"]), {"fixes_per_car": 1, "start_ms": 0}, "start_ms"),
        (("http://127.0.0.1:1", ["a"]), {"fixes_per_car": 1}, "mqtt://"),
    ],
)
async def test_run_cars_validates_before_connecting(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        await asyncio.wait_for(run_cars(*args, **kwargs), timeout=5)
