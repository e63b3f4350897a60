"""City simulator: can one process drive 10k devices? Model cost per tick and MQTT publishing, beside
the straight-leg car simulator (simulators.cars) as the peer.

    python bench/city_sim.py            # 8000 cars, 1000 pets, 1000 home kits; 120 ticks, then 300 s over MQTT
    python bench/city_sim.py --quick    # 2000 devices, 60 ticks, 60 s over MQTT

Lines:
  model      City.tick() alone (models + encoding every payload): ms per simulated second, µs per message;
  peer       simulators.cars step + sample + encode_fix_message for as many cars as the city has, one fix
             each per tick (the load `vigil simulate cars` makes), µs per message;
  mqtt       run_city at speedup 0 to a private Mosquitto (QoS 1, no gateway): simulated seconds per
             wall second — at least 1 means the devices can run in real time from this one process.
The last line is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest_harness import mosquitto  # noqa: E402
from roads import bundled_pbf, load_graph  # noqa: E402
from simulators import cars  # noqa: E402
from simulators.city import City, CityConfig  # noqa: E402
from simulators.city_publisher import run_city  # noqa: E402
from simulators.network import prepare  # noqa: E402


def model(network, cfg: CityConfig, ticks: int) -> dict:
    t0 = time.perf_counter()
    city = City(cfg, network, start_ms=1_795_000_000_000)
    build_s = time.perf_counter() - t0
    n = 0
    t0 = time.perf_counter()
    for _ in range(ticks):
        n += len(city.tick())
    s = time.perf_counter() - t0
    return {"devices": len(city.devices), "build_s": round(build_s, 2), "ms_per_tick": round(1000 * s / ticks, 2),
            "messages_per_tick": round(n / ticks, 1), "us_per_message": round(1e6 * s / max(n, 1), 1)}


def peer(n_cars: int, ticks: int) -> dict:
    state = cars.initial_state(n_cars, seed=1)
    rng = np.random.default_rng(2)
    ids = [f"car-{i:05d}" for i in range(n_cars)]
    t0 = time.perf_counter()
    for t in range(ticks):
        state = cars.step(state, 1.0, rng)
        fixes = cars.fixes_from_sample(cars.sample(state, rng), 1_795_000_000_000 + t * 1000)
        for device_id, fix in zip(ids, fixes):
            cars.encode_fix_message(device_id, t + 1, [fix])
    s = time.perf_counter() - t0
    return {"cars": n_cars, "ms_per_tick": round(1000 * s / ticks, 2),
            "us_per_message": round(1e6 * s / (n_cars * ticks), 1)}


def mqtt(network, cfg: CityConfig, duration_s: int) -> dict:
    with mosquitto(100, 1_000_000) as broker:
        city = City(cfg, network, start_ms=1_795_000_000_000)
        t0 = time.perf_counter()
        final = asyncio.run(run_city(broker.url, city, duration_s=duration_s, speedup=0))
        s = time.perf_counter() - t0
    return {"sim_s": final.sim_s, "wall_s": round(s, 1), "messages": final.messages,
            "messages_per_s": round(final.messages / s), "realtime_factor": round(final.sim_s / s, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    cars_n, pets_n, homes_n, ticks, mqtt_s = (1600, 200, 200, 60, 60) if args.quick else (8000, 1000, 1000, 120, 300)
    graph, _ = load_graph(bundled_pbf(), "driving", cache_dir=Path(tempfile.gettempdir()) / "vigil-bench-roads")
    network = prepare(graph, n_places=300, seed=1)
    cfg = CityConfig(cars=cars_n, pets=pets_n, homes=homes_n, seed=1)
    result = {"model": model(network, cfg, ticks), "peer_straight_legs": peer(cars_n + pets_n + homes_n, ticks // 4)}
    print("model", json.dumps(result["model"]), flush=True)
    print("peer ", json.dumps(result["peer_straight_legs"]), flush=True)
    result["mqtt"] = mqtt(network, cfg, mqtt_s)
    print("mqtt ", json.dumps(result["mqtt"]), flush=True)
    print("RESULT " + json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
