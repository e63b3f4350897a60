"""Certificate content from small hand-made inputs: ignition at the moment, the alleged place, usage."""

from __future__ import annotations

import numpy as np
import pytest

from certificates import content
from certificates.position import FineAssistConfig
from certificates.usage import usage_summary

T0 = 1_709_280_000_000   # 2024-03-01T08:00:00Z


def fixes(ts_s, ignition, lat0=60.17):
    ts = T0 + np.asarray(ts_s, np.int64) * 1000
    n = len(ts)
    return {"ts_ms": ts, "lat": lat0 + np.arange(n) * 1e-4, "lon": np.full(n, 24.94),
            "speed_kmh": np.full(n, 20.0), "heading_deg": np.zeros(n), "accuracy_m": np.full(n, 5.0),
            "ignition": np.asarray(ignition, np.int8)}


@pytest.mark.parametrize("ts_s, ignition, at_s, expected", [
    ([0, 10], [1, 1], 5, "on"),
    ([0, 10], [0, 0], 5, "off"),
    ([0, 10], [1, 0], 5, "unknown"),          # switched between the fixes
    ([0, 10], [-1, 1], 5, "unknown"),         # one box does not report it
    ([0, 200], [0, 0], 5, "unknown"),         # the fix after is beyond the max gap: no evidence
])
def test_ignition_at_the_moment(ts_s, ignition, at_s, expected):
    body = content.fine_assist(fixes(ts_s, ignition), T0 + at_s * 1000, None, FineAssistConfig())
    assert body["findings"]["ignition"]["at_moment"] == expected
    assert body["findings"]["attested"] is True


def test_alleged_place_inside_and_outside_the_radius():
    track = fixes([0, 2], [1, 1])
    inside = content.fine_assist(track, T0 + 1000, (60.17005, 24.94), FineAssistConfig())["findings"]
    assert inside["alleged_place"]["within_radius"] is True and inside["alleged_place"]["beyond_radius_m"] == 0
    outside = content.fine_assist(track, T0 + 1000, (60.18, 24.94), FineAssistConfig())["findings"]
    place = outside["alleged_place"]
    assert place["within_radius"] is False and place["distance_m"] == pytest.approx(1108, abs=5)
    assert place["beyond_radius_m"] == pytest.approx(place["distance_m"] - outside["position"]["radius_m"], abs=0.2)
    far = content.fine_assist(track, T0 + 1_000_000, (60.18, 24.94), FineAssistConfig())["findings"]
    assert far["alleged_place"] == {"distance_m": None, "beyond_radius_m": None, "within_radius": None}


def test_usage_days_follow_local_time_and_bands_count_trips():
    # 23:30 UTC and 00:30 UTC the next day: two UTC days, one day in UTC-2.
    start = np.array([T0 + 15 * 3_600_000 + 1_800_000, T0 + 16 * 3_600_000 + 1_800_000, T0 + 40 * 3_600_000])
    common = dict(start_ms=start, distance_m=[10_000.0, 5_000.0, 20_000.0], max_speed_kmh=[45.0, 95.0, 131.0],
                  urban_m=[8_000.0, 1_000.0, 0.0], extra_urban_m=[2_000.0, 4_000.0, 5_000.0],
                  highway_m=[0.0, 0.0, 15_000.0], event_counts={"harsh_braking": 3, "crash": 1, "speeding": 2})
    utc = usage_summary(utc_offset_min=np.zeros(3), **common)
    west = usage_summary(utc_offset_min=np.full(3, -120), **common)
    assert (utc["days_used"], west["days_used"]) == (3, 2)
    assert utc["distance_km"] == 35.0 and utc["typical_use"] == "highway"
    assert utc["km_by_road_class"] == {"urban": 9.0, "extra_urban": 11.0, "highway": 15.0}
    assert utc["trips_by_max_speed_kmh"] == {"0-50": 1, "50-90": 0, "90-130": 1, "130+": 1}
    assert utc["max_speed_kmh"] == 131.0 and utc["crashes_detected"] == 1 and utc["speeding_events"] == 2
    assert utc["harsh_events"] == {"harsh_acceleration": 0, "harsh_braking": 3, "harsh_cornering": 0}
    empty = usage_summary(utc_offset_min=[], **{**common, "start_ms": [], "distance_m": [], "max_speed_kmh": [],
                                                "urban_m": [], "extra_urban_m": [], "highway_m": []})
    assert (empty["trips"], empty["days_used"], empty["typical_use"], empty["max_speed_kmh"]) == (0, 0, None, None)
