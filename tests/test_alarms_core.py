"""The pure alarm core: transitions, arming, staleness, escalation stages and supervision verdicts."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alarms.model import ALARM_TYPES, AlarmConfig, DeviceEvent
from alarms.supervision import KINDS, supervise
from alarms.transition import acknowledge, apply_events, assign, customer_feedback, escalate, resolve
from vigil.errors import Conflict, RejectedInput

T0 = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.timezone.utc)
CONFIG = AlarmConfig()


def ev(type_: str, s: float = 0.0, device: int = 1, event_id: str | None = None) -> DeviceEvent:
    return DeviceEvent(device=device, type=type_, ts=T0 + dt.timedelta(seconds=s), event_id=event_id)


def run(events, now_s: float = 0.0, alarms=None, arming=None):
    return apply_events(alarms or {}, arming or {}, events, CONFIG, T0 + dt.timedelta(seconds=now_s))


def test_motion_counts_only_while_armed_and_arming_follows_event_time():
    out = run([ev("motion", 0), ev("armed", 1), ev("motion", 2), ev("disarmed", 3), ev("motion", 4)], now_s=5)
    assert list(out.alarms) == [(1, "intrusion")] and out.alarms[(1, "intrusion")].count == 1
    assert out.ignored == 2 and out.arming[1] == (False, T0 + dt.timedelta(seconds=3))
    # An arming report older than the state already held does not overwrite it.
    later = run([ev("armed", 2)], arming={1: (False, T0 + dt.timedelta(seconds=3))})
    assert later.arming[1] == (False, T0 + dt.timedelta(seconds=3))


def test_water_and_smoke_count_whether_armed_or_not():
    out = run([ev("water_leak", 0), ev("smoke", 1)], arming={1: (False, T0)})
    assert set(out.alarms) == {(1, "water_leak"), (1, "smoke")}


def test_repeat_restore_and_reactivation():
    out = run([ev("water_leak", 0), ev("water_leak", 1), ev("water_restored", 2), ev("water_leak", 3)], now_s=3)
    alarm = out.alarms[(1, "water_leak")]
    assert (alarm.count, alarm.active, alarm.last_ts) == (3, True, T0 + dt.timedelta(seconds=3))
    assert [c.kind for c in out.changes[(1, "water_leak")]] == ["raised", "repeated", "cleared", "reactivated"]


def test_old_events_are_recorded_stale_and_never_start_a_chain():
    out = run([ev("smoke", 0)], now_s=CONFIG.old_event_s + 1)
    alarm = out.alarms[(1, "smoke")]
    assert alarm.stale and alarm.next_step_at is None
    assert escalate(alarm, CONFIG.chain("smoke"), T0 + dt.timedelta(hours=5))[1] is None


def test_stages_run_in_order_and_severity_is_capped():
    alarm = run([ev("water_leak", 0)]).alarms[(1, "water_leak")]
    chain = CONFIG.chain("water_leak")
    seen = []
    for t in (0, 30, 120, 300, 10_000):
        alarm, stage, step = escalate(alarm, chain, T0 + dt.timedelta(seconds=t))
        seen.append((step, alarm.severity))
    assert seen == [(0, "major"), (1, "critical"), (2, "critical"), (3, "critical"), (-1, "critical")]
    assert alarm.next_step_at is None


def test_operator_actions():
    alarm = run([ev("sos", 0)]).alarms[(1, "sos")]
    alarm = dataclasses.replace(alarm, id=7)
    claimed, _ = assign(alarm, "op-1", "op-1", T0, force=False)
    with pytest.raises(Conflict):
        assign(claimed, "op-2", "op-2", T0, force=False)
    assert assign(claimed, "sup", "op-2", T0, force=True)[0].assignee == "op-2"
    acked, changes = acknowledge(claimed, "op-1", T0 + dt.timedelta(seconds=12))
    assert acked.next_step_at is None and changes[0].detail["after_s"] == 12.0
    assert acknowledge(acked, "op-1", T0)[1] == []
    with pytest.raises(RejectedInput):
        resolve(acked, "op-1", "maybe", None, T0)
    done, changes = resolve(claimed, "op-1", "false_alarm", "neighbour's cat", T0)
    assert done.state == "resolved" and [c.kind for c in changes] == ["acknowledged", "cleared", "resolved"]
    with pytest.raises(Conflict):
        acknowledge(done, "op-1", T0)
    with pytest.raises(RejectedInput):
        customer_feedback(done, "cust", "whatever", None, T0)


@given(st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["water_leak", "water_restored", "smoke", "armed",
                                                              "motion", "heartbeat"])), max_size=60))
def test_one_open_alarm_per_device_and_type_and_every_trigger_counted(pairs):
    events = [ev(t, s=i, device=d) for i, (d, t) in enumerate(pairs)]
    out = run(events, now_s=len(events))
    armed_before = {}
    expected: dict[tuple[int, str], int] = {}
    for d, t in pairs:
        if t == "armed":
            armed_before[d] = True
        elif t in ("water_leak", "smoke") or (t == "motion" and armed_before.get(d)):
            key = (d, {"water_leak": "water_leak", "smoke": "smoke", "motion": "intrusion"}[t])
            expected[key] = expected.get(key, 0) + 1
    assert {k: a.count for k, a in out.alarms.items()} == expected


def test_supervision_verdicts():
    now = 10_000_000
    last = [now - 1000_000, now - 10_000, now - 2_000_000, now - 5_000]
    kind = [KINDS.index(k) for k in ("home", "home", "pet", "car")]
    battery = [50.0, 10.0, np.nan, 22.0]
    v = supervise(last, kind, battery, [False, True, False, False], [False, False, False, True], now_ms=now,
                  offline_after_s={"home": 900.0, "pet": 3600.0}, low_battery_pct=15.0)
    assert v.went_offline.tolist() == [0] and v.came_back.tolist() == [1]
    assert v.battery_low.tolist() == [1] and v.battery_ok.tolist() == [3]


def test_every_type_has_codes_and_a_chain():
    for name, t in ALARM_TYPES.items():
        assert 100 <= t.contact_id <= 999 and len(t.sia) == 2 and CONFIG.chain(name)[0].after_s == 0.0
