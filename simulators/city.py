"""The city scenario: cars, pets and home kits on one road network, advanced one simulated second per
:meth:`City.tick`, which returns the MQTT messages of that second (pure: no I/O, no clock reads).

Cars (:mod:`simulators.fleet`) report at their device's interval (1–30 s), at once on a harsh event, a
crash or an ignition change, and every :data:`PARKED_REPORT_S` (60 s) while parked. Most send the Vigil car
JSON, ``teltonika_share`` send Teltonika Codec 8E on ``car/avl``, ``phone_share`` are phones running
OwnTracks. Pets (:mod:`simulators.pets`) live at homes near the road network and report every 15–60 s;
home kits (:mod:`simulators.homes`) send heartbeats and their events. Every fix sent and every true
event is kept as ground truth (:meth:`City.drain_truth`), which :mod:`simulators.truth_log` writes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np

from simulators import fleet as fleet_model
from simulators import homes as home_model
from simulators import pets as pet_model
from simulators import wire
from simulators.cars import fixes_from_sample
from simulators.network import Network

G = 9.80665
PARKED_REPORT_S = 60  # a trip closes once its stop is seen to last 180 s (trips/config.py)
CAR_INTERVALS_S = (1, 2, 5, 10, 15, 30)
CAR_INTERVAL_P = (0.1, 0.15, 0.25, 0.25, 0.15, 0.1)
PET_INTERVALS_S = (15, 30, 60)
#: Counters of :attr:`City.counts`: messages per stream, plus ``home_events`` (events inside messages).
STREAMS = ("car_json", "car_avl", "owntracks", "pet_fix", "pet_sos", "pet_heartbeat", "home_event",
           "home_events", "home_heartbeat")


@dataclass(frozen=True)
class CityConfig:
    """A city scenario. Rates are per device-hour; times are seconds of simulated time from the start."""

    cars: int = 200
    pets: int = 50
    homes: int = 50
    seed: int = 1
    prefix: str = "city-"
    imei_base: int = 352_093_080_000_000
    teltonika_share: float = 0.15
    phone_share: float = 0.05
    places: int = 300
    timezone: str = "Europe/Helsinki"
    car_rates: dict = field(default_factory=dict)    # keyword rates of fleet.new_fleet
    pet_rates: dict = field(default_factory=dict)
    home_rates: dict = field(default_factory=dict)
    pet_heartbeat_s: int = 300
    home_heartbeat_s: int = 300
    power_cut_at_s: float = 600.0
    power_cut_s: float = 1200.0
    power_cut_radius_m: float = 600.0
    power_cut_detect_s: float = 20.0

    def __post_init__(self) -> None:
        for name in ("cars", "pets", "homes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.cars + self.pets + self.homes == 0:
            raise ValueError("a city needs at least one device")
        if not (0 <= self.teltonika_share and 0 <= self.phone_share and self.teltonika_share + self.phone_share <= 1):
            raise ValueError("teltonika_share and phone_share must be shares of the cars that add up to at most 1")


@dataclass(frozen=True)
class Device:
    device_id: str
    kind: str          # registry kind: car, pet, home
    protocol: str      # one of wire.PROTOCOLS


class City:
    """The whole scenario; ``start_ms`` (UTC ms, rounded down to a second) is the time of tick 0."""

    def __init__(self, config: CityConfig, network: Network, *, start_ms: int) -> None:
        c = self.config = config
        self.start_ms = int(start_ms) // 1000 * 1000
        self.t = 0
        rng = self.rng = np.random.default_rng([c.seed, 1])
        n_avl = int(round(c.cars * c.teltonika_share))
        n_phone = int(round(c.cars * c.phone_share))
        order = rng.permutation(c.cars)
        self.car_protocol = np.zeros(c.cars, np.int8)  # 0 JSON, 1 Teltonika, 2 OwnTracks
        self.car_protocol[order[:n_avl]] = 1
        self.car_protocol[order[n_avl:n_avl + n_phone]] = 2
        self.devices: list[Device] = []
        for i, proto in enumerate(self.car_protocol):
            if proto == 1:
                self.devices.append(Device(str(c.imei_base + i), "car", "teltonika"))
            elif proto == 2:
                self.devices.append(Device(f"{c.prefix}u{i:05d}:phone", "car", "owntracks"))
            else:
                self.devices.append(Device(f"{c.prefix}car-{i:05d}", "car", "vigil_json"))
        self.devices += [Device(f"{c.prefix}pet-{i:05d}", "pet", "pet_json") for i in range(c.pets)]
        self.devices += [Device(f"{c.prefix}home-{i:05d}", "home", "home_json") for i in range(c.homes)]
        self.seq = np.zeros(len(self.devices), np.int64)
        self.counts = dict.fromkeys(STREAMS, 0)
        self._events: list[dict] = []
        self._fix_rows: list[tuple[np.ndarray, ...]] = []

        g = network.graph
        self.fleet = fleet_model.new_fleet(network, c.cars, rng, **c.car_rates) if c.cars else None
        self.car_interval = rng.choice(CAR_INTERVALS_S, size=c.cars, p=CAR_INTERVAL_P)
        self.car_interval = np.where(self.car_protocol == 2, np.maximum(self.car_interval, 10), self.car_interval)
        self.car_phase = rng.integers(0, 3600, c.cars)
        self.odometer = rng.uniform(5e6, 2e8, c.cars)
        self.phone_battery = rng.uniform(30, 100, c.cars)
        self.satellites = rng.integers(6, 14, c.cars)
        homes_at = rng.integers(0, g.n_nodes, c.pets + c.homes)
        jitter = rng.normal(0, 25.0, (2, c.pets + c.homes))  # houses stand beside the street
        lat = g.lat[homes_at] + np.degrees(jitter[0] / 6_371_008.8)
        lon = g.lon[homes_at] + np.degrees(jitter[1] / (6_371_008.8 * np.cos(np.radians(g.lat[homes_at]))))
        self.pets = pet_model.new_pets(lat[:c.pets], lon[:c.pets], rng, **c.pet_rates) if c.pets else None
        self.pet_interval = rng.choice(PET_INTERVALS_S, size=c.pets)
        self.pet_phase = rng.integers(0, 3600, c.pets)
        tz = ZoneInfo(c.timezone)
        local = dt.datetime.fromtimestamp(self.start_ms / 1000, tz)
        self.local0_s = local.hour * 3600 + local.minute * 60 + local.second
        self.homes = (home_model.new_homes(lat[c.pets:], lon[c.pets:], rng, local_s=self.local0_s, **c.home_rates)
                      if c.homes else None)
        self.home_phase = rng.integers(0, 3600, c.homes)
        self.power_cut_hit = np.zeros(c.homes, bool)
        if c.homes:
            centre = (float(self.homes.lat[0]), float(self.homes.lon[0]))
            self.power_cut_hit = home_model.schedule_power_cut(
                self.homes, centre=centre, radius_m=c.power_cut_radius_m, at_s=c.power_cut_at_s,
                duration_s=c.power_cut_s, detect_s=c.power_cut_detect_s, rng=rng)
            self._event_row(None, "power_cut", lat=centre[0], lon=centre[1], kits=int(self.power_cut_hit.sum()),
                            at_s=c.power_cut_at_s, duration_s=c.power_cut_s, radius_m=c.power_cut_radius_m)
        #: Index of the first car, pet and home kit in :attr:`devices`.
        self.car0, self.pet0, self.home0 = 0, c.cars, c.cars + c.pets
        if self.fleet is not None:
            pos = fleet_model.position(self.fleet)
            for t in self.fleet.initial_trips:
                i = t.pop("car")
                self._event_row(i, "trip_start", lat=pos["lat"][i], lon=pos["lon"][i], **self._named(t))

    def _named(self, record: dict) -> dict:
        """A truth record with the names of its places beside their indices."""
        names = self.fleet.net.place_names
        for key in ("from_place", "to_place"):
            if key in record:
                record[key.replace("place", "name")] = str(names[record[key]])
        return record

    @property
    def now_ms(self) -> int:
        return self.start_ms + self.t * 1000

    def _event_row(self, device: int | None, kind: str, **extra) -> None:
        row = {"ts_ms": self.now_ms, "type": kind, "device": None if device is None else self.devices[device].device_id}
        row.update({k: (float(v) if isinstance(v, np.floating) else v) for k, v in extra.items()})
        self._events.append(row)

    def _next_seq(self, device: int) -> int:
        self.seq[device] += 1
        return int(self.seq[device])

    def tick(self) -> list[tuple[int, str, bytes]]:
        """Advance one simulated second; the messages stamped at the new time, as (device index, topic,
        payload)."""
        self.t += 1
        out: list[tuple[int, str, bytes]] = []
        if self.fleet is not None:
            self._tick_cars(out)
        if self.pets is not None:
            self._tick_pets(out)
        if self.homes is not None:
            self._tick_homes(out)
        return out

    def _tick_cars(self, out: list) -> None:
        f, rng = self.fleet, self.rng
        urgent, truth = fleet_model.step(f, 1.0, rng, now_s=float(self.t))
        pos = fleet_model.position(f)
        for r in truth:
            i = r.pop("car")
            kind = r.pop("type")
            self._event_row(self.car0 + i, kind, lat=pos["lat"][i], lon=pos["lon"][i], **self._named(r))
        n = f.n
        still = (f.phase != fleet_model.DRIVING) & ~f.ignition
        period = np.where(still, PARKED_REPORT_S, self.car_interval)
        due = urgent | ((self.t + self.car_phase) % period == 0)
        self.odometer += np.where(f.phase == fleet_model.DRIVING, f.v, 0.0)  # m this second, near enough
        idx = np.flatnonzero(due)
        if not len(idx):
            return
        accuracy = rng.uniform(3.0, 12.0, n)[idx]
        err = rng.normal(0.0, 1.0, (2, n))[:, idx] * accuracy / 2.0
        east = err[0] + f.drift_e[idx]
        north = err[1] + f.drift_n[idx]
        lat = pos["lat"][idx] + np.degrees(north / 6_371_008.8)
        lon = pos["lon"][idx] + np.degrees(east / (6_371_008.8 * np.cos(np.radians(pos["lat"][idx]))))
        v = f.v[idx]
        speed = np.where(v > 0, np.maximum(v * 3.6 + rng.normal(0, 0.3, n)[idx], 0.0), 0.0)
        heading = (pos["bearing_deg"][idx] + np.where(v > 0, rng.normal(0, 1.0, n)[idx], 0.0)) % 360.0
        accel = np.column_stack([f.accel[idx] / G + rng.normal(0, 0.01, n)[idx],
                                 f.lateral[idx] / G + rng.normal(0, 0.02, n)[idx], 1.0 + rng.normal(0, 0.01, n)[idx]])
        fixes = fixes_from_sample({"lat": lat, "lon": lon, "speed_kmh": speed, "heading_deg": heading,
                                    "accuracy_m": accuracy, "ignition": f.ignition[idx], "accel_g": accel}, self.now_ms)
        self.phone_battery = np.maximum(self.phone_battery - 0.01, 5.0)
        for i, fix in zip(idx.tolist(), fixes):
            d = self.car0 + i
            dev = self.devices[d]
            proto = self.car_protocol[i]
            if proto == 0:
                out.append((d, wire.topic("car", dev.device_id, "fix"),
                            wire.car_json(dev.device_id, self._next_seq(d), fix)))
                self.counts["car_json"] += 1
            elif proto == 1:
                out.append((d, wire.topic("car", dev.device_id, "avl"),
                            wire.car_avl(fix, self.odometer[i], int(self.satellites[i]))))
                self.counts["car_avl"] += 1
            else:
                out.append((d, wire.owntracks_topic(dev.device_id),
                            wire.owntracks_location(fix, int(self.phone_battery[i]), "c" + str(i % 10))))
                self.counts["owntracks"] += 1
        self._fix_rows.append((self.car0 + idx, np.full(len(idx), self.now_ms), pos["lat"][idx], pos["lon"][idx],
                               lat, lon, v, pos["segment"][idx]))

    def _tick_pets(self, out: list) -> None:
        p, rng = self.pets, self.rng
        truth = pet_model.step(p, 1.0, rng, now_s=float(self.t))
        lat, lon = p.position()
        n = p.n
        accuracy = rng.uniform(4.0, 15.0, n)
        err = rng.normal(0.0, 1.0, (2, n)) * accuracy / 2.0
        r_lat = lat + np.degrees(err[1] / 6_371_008.8)
        r_lon = lon + np.degrees(err[0] / (6_371_008.8 * np.cos(np.radians(lat))))
        for r in truth:
            i = r.pop("pet")
            kind = r.pop("type")
            d = self.pet0 + i
            self._event_row(d, kind, lat=lat[i], lon=lon[i], fence_m=p.fence_m[i], **r)
            if kind == "sos":
                seq = self._next_seq(d)
                out.append((d, wire.topic("pet", self.devices[d].device_id, "sos"), wire.pet_sos(
                    self.devices[d].device_id, seq, self.now_ms, f"sos-{seq}", round(float(r_lat[i]), 7),
                    round(float(r_lon[i]), 7), round(float(accuracy[i]), 1), round(float(p.battery[i]), 1))))
                self.counts["pet_sos"] += 1
        due = np.flatnonzero((self.t + self.pet_phase) % self.pet_interval == 0)
        for i in due.tolist():
            d = self.pet0 + i
            fix = {"ts": self.now_ms, "lat": round(float(r_lat[i]), 7), "lon": round(float(r_lon[i]), 7),
                   "accuracy_m": round(float(accuracy[i]), 1), "speed_kmh": round(float(p.speed[i] * 3.6), 1),
                   "heading_deg": round(float(np.degrees(p.heading[i]) % 360.0), 1) % 360.0,
                   "battery_pct": round(float(p.battery[i]), 1)}
            out.append((d, wire.topic("pet", self.devices[d].device_id, "fix"),
                        wire.pet_fix(self.devices[d].device_id, self._next_seq(d), [fix])))
        self.counts["pet_fix"] += len(due)
        if len(due):
            self._fix_rows.append((self.pet0 + due, np.full(len(due), self.now_ms), lat[due], lon[due], r_lat[due],
                                   r_lon[due], p.speed[due], np.full(len(due), -1)))
        beat = np.flatnonzero((self.t + self.pet_phase) % self.config.pet_heartbeat_s == 0)
        for i in beat.tolist():
            d = self.pet0 + i
            out.append((d, wire.topic("pet", self.devices[d].device_id, "heartbeat"), wire.pet_heartbeat(
                self.devices[d].device_id, self._next_seq(d), self.now_ms, round(float(p.battery[i]), 1))))
        self.counts["pet_heartbeat"] += len(beat)

    def _tick_homes(self, out: list) -> None:
        h = self.homes
        local_prev = (self.local0_s + self.t - 1) % home_model.DAY_S
        local = (self.local0_s + self.t) % home_model.DAY_S
        events = home_model.step(h, 1.0, self.rng, now_s=float(self.t), local_prev_s=local_prev, local_s=local)
        by_kit: dict[int, list[dict]] = {}
        for i, kind, sensor in events:
            d = self.home0 + i
            self._event_row(d, kind, sensor=sensor, lat=h.lat[i], lon=h.lon[i])
            ev = {"ts": self.now_ms, "type": kind, "event_id": f"e{self.t}-{kind}"}
            if sensor is not None:
                ev.update(sensor=sensor, battery_pct=round(float(h.battery[i]), 1))
            by_kit.setdefault(i, []).append(ev)
        for i, evs in by_kit.items():
            d = self.home0 + i
            out.append((d, wire.topic("home", self.devices[d].device_id, "event"),
                        wire.home_events(self.devices[d].device_id, self._next_seq(d), evs)))
            self.counts["home_event"] += 1
            self.counts["home_events"] += len(evs)
        beat = np.flatnonzero((self.t + self.home_phase) % self.config.home_heartbeat_s == 0)
        for i in beat.tolist():
            d = self.home0 + i
            out.append((d, wire.topic("home", self.devices[d].device_id, "heartbeat"), wire.home_heartbeat(
                self.devices[d].device_id, self._next_seq(d), self.now_ms, round(float(h.battery[i]), 1),
                bool(h.mains[i]))))
        self.counts["home_heartbeat"] += len(beat)

    def drain_truth(self) -> tuple[list[dict], dict[str, np.ndarray] | None]:
        """Truth gathered since the last call: event rows (``ts_ms``, ``type``, ``device``, ``lat``/``lon``
        …) and the fixes sent (columns ``device`` index, ``ts_ms``, ``true_lat``/``true_lon``, reported
        ``lat``/``lon``, ``speed_ms``, ``segment`` of the driving graph, -1 for pets)."""
        events, self._events = self._events, []
        rows, self._fix_rows = self._fix_rows, []
        if not rows:
            return events, None
        names = ("device", "ts_ms", "true_lat", "true_lon", "lat", "lon", "speed_ms", "segment")
        return events, {k: np.concatenate([r[j] for r in rows]) for j, k in enumerate(names)}

    def expected_rows(self) -> dict[str, int]:
        """Rows the gateway stores for what was sent so far: ``fixes`` and ``device_events``."""
        c = self.counts
        return {"fixes": c["car_json"] + c["car_avl"] + c["owntracks"] + c["pet_fix"],
                "device_events": c["pet_sos"] + c["pet_heartbeat"] + c["home_events"] + c["home_heartbeat"]}
