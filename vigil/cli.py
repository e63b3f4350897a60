"""The ``vigil`` command: up, demo, simulate, migrate, devices."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import warnings
from contextlib import asynccontextmanager
from pathlib import Path

from vigil import accounts_cli
from vigil.broker import die_with_parent
from vigil.errors import ConfigError, VigilError
from vigil.settings import Settings

log = logging.getLogger("vigil")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vigil", description="Telematics ingestion and device services.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run broker, database, gateway, storage writer and API until Ctrl-C")
    demo = sub.add_parser("demo", help="`up` plus simulated cars; prints the URLs to open")
    demo.add_argument("--cars", type=int, default=None, help="default 200 (city) or 50 (cars)")
    demo.add_argument("--interval", type=float, default=1.0, help="seconds between a car's fixes")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--scenario", choices=("city", "cars"), default="city",
                      help="city: cars on the road graph, pets and home kits; cars: the straight-leg cars")
    _city_arguments(demo, cars=None)

    sim = sub.add_parser("simulate", help="publish simulated devices over MQTT")
    sim.add_argument("--scenario", choices=("city",), default=None,
                     help="city: cars on the road graph, pets and home kits (see docs/simulators.md)")
    _city_arguments(sim, cars=200)
    sim.add_argument("--seed", dest="city_seed", type=int, default=1, help="city: same seed, same city")
    sim.add_argument("--duration", dest="city_duration", type=int, default=None,
                     help="simulated seconds to run (default: until Ctrl-C)")
    sim.add_argument("--speedup", dest="city_speedup", type=float, default=1.0,
                     help="simulated seconds per second (0: as fast as possible); needs --duration unless 1")
    sim.add_argument("--truth-dir", dest="city_truth_dir", default=None,
                     help="write the ground truth here (default: <data dir>/simulation)")
    sim.add_argument("--no-provision", dest="city_provision", action="store_false",
                     help="do not register the devices (they must exist already)")
    sim_sub = sim.add_subparsers(dest="what", required=False)
    cars = sim_sub.add_parser("cars", help="plausible moving cars (straight legs, accelerations, stops)")
    cars.add_argument("--count", type=int, default=10, help="number of cars")
    cars.add_argument("--rate", type=float, default=1.0, help="fixes per second per car")
    cars.add_argument("--fixes", type=int, default=None, help="stop after this many fixes per car")
    cars.add_argument("--fast", action="store_true", help="publish as fast as possible with past timestamps")
    cars.add_argument("--prefix", default="sim-car-", help="device id prefix")
    cars.add_argument("--seed", type=int, default=0)
    cars.add_argument("--provision", action="store_true", help="register the cars in the database first")

    gw = sub.add_parser("gateway", help="run only MQTT gateways (with their writer unless the bus is Kafka)")
    gw.add_argument("--workers", type=int, default=1, help="gateway processes sharing one subscription")
    sub.add_parser("writer", help="run only the storage writer (consumes the Kafka bus)")
    sub.add_parser("migrate", help="apply database migrations and exit")
    dev = sub.add_parser("devices", help="manage the device registry")
    dev_sub = dev.add_subparsers(dest="action", required=True)
    add = dev_sub.add_parser("add", help="provision devices and issue their MQTT passwords")
    add.add_argument("device_ids", nargs="*", help="device ids (or use --id, repeatable)")
    add.add_argument("--id", dest="more_ids", action="append", default=[], help="a device id")
    add.add_argument("--kind", choices=("car", "home", "pet"), required=True)
    add.add_argument("--owner", default=None)
    add.add_argument("--timezone", default="UTC", help="IANA zone where the device lives, e.g. Europe/Rome")
    add.add_argument("--status", choices=("provisioned", "active"), default="active",
                     help="provisioned: the owner activates it (POST /v1/devices/{id}/activate) before it may send")
    accounts_cli.add_parser(sub)
    certs = sub.add_parser("certificates", help="verify certificates, rotate the signing key")
    certs_sub = certs.add_subparsers(dest="action", required=True)
    verify = certs_sub.add_parser("verify", help="verify a certificate (JSON or PDF): exit 0 valid, 1 invalid")
    verify.add_argument("file", help="the certificate's .json or .pdf")
    verify.add_argument("--keys", default=None, help="directory of public keys (<key id>.pub); default: "
                        "VIGIL_CERTIFICATE_KEY_DIR or <data dir>/certificate-keys")
    certs_sub.add_parser("rotate-key", help="make a new active signing key; older public keys keep verifying")
    return p


def _city_arguments(p: argparse.ArgumentParser, *, cars: int | None) -> None:
    if cars is not None:
        p.add_argument("--cars", dest="cars", type=int, default=cars, help="city: number of cars")
    p.add_argument("--pets", dest="city_pets", type=int, default=50, help="city: number of pet trackers")
    p.add_argument("--homes", dest="city_homes", type=int, default=50, help="city: number of home kits")
    p.add_argument("--own-credentials", dest="city_own", type=int, default=None,
                   help="city: only K devices log in with their own MQTT password, the rest share the simulator "
                        "account (default: every device has its own)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except VigilError as exc:
        print(f"vigil: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    # pgserver narrates initdb and pg_ctl at INFO; its failures still come through as warnings.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, CI); pgserver then uses /tmp.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    handlers = {"up": _up, "demo": _demo, "gateway": _gateway, "writer": _writer, "simulate": _simulate, "migrate": _migrate, "devices": _devices}
    handlers["accounts"] = _accounts
    handlers["certificates"] = _certificates
    try:
        return asyncio.run(handlers[args.command](settings, args)) or 0
    except VigilError as exc:
        print(f"vigil: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _stop_event() -> asyncio.Event:
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, event.set)
    return event


async def _run_until_stopped(runtime, stop: asyncio.Event, extra: list[asyncio.Task] = ()) -> None:
    stopper = asyncio.create_task(stop.wait())
    crashed = asyncio.create_task(runtime.wait())
    await asyncio.wait([stopper, crashed, *extra], return_when=asyncio.FIRST_COMPLETED)
    print("\nstopping…", flush=True)
    if extra and stop.is_set():
        # Simulators watch `stop` too: let them close their MQTT connections before the broker goes.
        await asyncio.wait(extra, timeout=5)
    for task in (stopper, crashed, *extra):
        task.cancel()
    await asyncio.gather(stopper, crashed, *extra, return_exceptions=True)
    await runtime.stop()
    print("stopped.", flush=True)


def _banner(runtime) -> None:
    print(f"\nVigil is up in {runtime.startup_s:.1f}s", flush=True)
    for line in runtime.descriptions:
        print("  " + line)


async def _up(settings: Settings, args, parts: frozenset[str] | None = None) -> int:
    from vigil.runtime import PARTS, Runtime

    stop = _stop_event()
    runtime = Runtime(settings, parts=parts or PARTS)
    await runtime.start()
    _banner(runtime)
    print("Ctrl-C stops everything.", flush=True)
    await _run_until_stopped(runtime, stop)
    return 0


async def _gateway(settings: Settings, args) -> int:
    if not settings.mqtt_url:
        raise ConfigError("vigil gateway needs VIGIL_MQTT_URL: gateways share a broker, they do not start one")
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if args.workers == 1:
        return await _up(settings, args, frozenset({"gateway"}))
    return await _supervise(settings, args.workers)


async def _writer(settings: Settings, args) -> int:
    if not settings.kafka_bootstrap:
        raise ConfigError("vigil writer consumes the Kafka bus: set VIGIL_KAFKA_BOOTSTRAP")
    return await _up(settings, args, frozenset({"writer"}))


async def _supervise(settings: Settings, workers: int) -> int:
    """Run ``workers`` gateway processes on one shared subscription; stop them all on Ctrl-C."""
    stop = _stop_event()
    procs = []
    for i in range(workers):
        env = dict(os.environ, VIGIL_MQTT_SHARED="true", VIGIL_MQTT_CLIENT_ID=f"{settings.mqtt_client_id}-{i + 1}")
        procs.append(await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vigil.cli", "gateway", "--workers", "1", env=env,
            preexec_fn=die_with_parent,
        ))
    print(f"started {workers} gateway processes: pids {' '.join(str(p.pid) for p in procs)}", flush=True)
    waits = [asyncio.ensure_future(p.wait()) for p in procs]
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait([stopper, *waits], return_when=asyncio.FIRST_COMPLETED)
    for p in procs:
        if p.returncode is None:
            p.send_signal(signal.SIGTERM)
    codes = await asyncio.gather(*waits)
    stopper.cancel()
    return 0 if stop.is_set() and all(c == 0 for c in codes) else 1


async def _demo(settings: Settings, args) -> int:
    if args.scenario == "city":
        return await _demo_city(settings, args)
    from simulators.publisher import run_cars
    from storage import devices
    from vigil.runtime import Runtime

    stop = _stop_event()
    runtime = Runtime(settings)
    await runtime.start()
    ids = [f"demo-car-{i:04d}" for i in range(1, (args.cars or 50) + 1)]
    await devices.provision(runtime.db, ids, kind="car", owner="demo-customer", timezone="Europe/Helsinki")
    user, password = await runtime.issue_simulator_account() or (None, None)
    logins = await accounts_cli.demo_logins(runtime.db, customer_id="demo-customer")
    sim = asyncio.create_task(run_cars(
        runtime.mqtt_url, ids, interval_s=args.interval, realtime=True, seed=args.seed, stop=stop,
        username=user, password=password,
    ))
    _banner(runtime)
    url = runtime.http_url
    print(f"\n{len(ids)} simulated cars are driving around central Helsinki. Open:")
    print(f"  {url}/app                                  the customer app (log in as a customer below)")
    print(f"  {url}/console                              the assistance-centre console (log in as the operator)")
    print(f"  {url}/v1/vehicles                          every car with its last position")
    print(f"  {url}/v1/vehicles/{ids[0]}/position   Find-Vehicle for one car (refresh: it moves)")
    print(f"  {url}/v1/vehicles/{ids[0]}/trips      its trips, once it has parked (a few minutes in)")
    print(f"  {url}/docs                                 the API")
    print(f"  {url}/healthz                              storage mode and rejected messages")
    print("The /v1 routes need a token. API logins (new passwords each run; /docs → Authorize):")
    for name, secret, role in logins:
        print(f"  {name:10} {secret}   {role}")
    print(f"  e.g. TOKEN=$(curl -s -d grant_type=password -d username={logins[0][0]} -d password={logins[0][1]}"
          f" {url}/v1/auth/token | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')")
    print(f"       curl -H \"Authorization: Bearer $TOKEN\" {url}/v1/vehicles")
    print("Ctrl-C stops everything.", flush=True)
    await _run_until_stopped(runtime, stop, [sim])
    return 0


async def _demo_city(settings: Settings, args) -> int:
    from simulators.city import CityConfig
    from simulators.city_run import CityRun, city_network, simulate_city
    from vigil.runtime import Runtime

    stop = _stop_event()
    runtime = Runtime(settings)
    await runtime.start()
    try:
        try:
            config = CityConfig(cars=200 if args.cars is None else args.cars, pets=args.city_pets,
                                homes=args.city_homes, seed=args.seed, prefix="demo-")
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        network = city_network(settings.osm_pbf, cache_dir=settings.data_dir / "roads", seed=args.seed,
                               places=config.places)
        run = CityRun(config=config, mqtt_url=runtime.mqtt_url, own_credentials=args.city_own,
                      truth_dir=settings.data_dir / "simulation", first_owner="demo-customer", db=runtime.db)
        if run.shares_account:
            run.username, run.password = await runtime.issue_simulator_account() or (None, None)
        run.osm_pbf, run.cache_dir = settings.osm_pbf, settings.data_dir / "roads"
        logins = await accounts_cli.demo_logins(runtime.db, customer_id="demo-customer")
    except BaseException:
        await runtime.stop()
        raise
    sim = asyncio.create_task(simulate_city(run, network, stop=stop))
    _banner(runtime)
    url = runtime.http_url
    print(f"\nA simulated city is running on the streets of {network.graph.n_segments} road segments:"
          f" {config.cars} cars, {config.pets} pets, {config.homes} home kits; customer demo-customer owns"
          " the first car, pet and home kit. Open:")
    print(f"  {url}/app                                  the customer app (log in as demo)")
    print(f"  {url}/console                              the assistance-centre console (log in as operator)")
    print(f"  {url}/v1/vehicles                          every car with its last position")
    print(f"  {url}/docs                                 the API")
    print(f"  {url}/healthz                              storage mode and rejected messages")
    print("Logins for the pages and the API (new passwords each run; /docs → Authorize):")
    for name, secret, role in logins:
        print(f"  {name:10} {secret}   {role}")
    print(f"Ground truth: {run.truth_dir}. Ctrl-C stops everything.", flush=True)
    await _run_until_stopped(runtime, stop, [sim])
    return 0


async def _simulate_city(settings: Settings, args) -> int:
    from simulators.city import CityConfig
    from simulators.city_run import CityRun, city_network, simulate_city

    if args.city_duration is None and args.city_speedup != 1.0:
        raise ConfigError("--speedup other than 1 needs --duration (the stamps are placed so the run ends now)")
    try:
        config = CityConfig(cars=args.cars, pets=args.city_pets, homes=args.city_homes, seed=args.city_seed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    network = city_network(settings.osm_pbf, cache_dir=settings.data_dir / "roads", seed=args.city_seed,
                           places=config.places)
    run = CityRun(config=config, mqtt_url=settings.mqtt_url or "mqtt://127.0.0.1:1883",
                  duration_s=args.city_duration, speedup=args.city_speedup, own_credentials=args.city_own,
                  truth_dir=Path(args.city_truth_dir or settings.data_dir / "simulation"),
                  username=settings.mqtt_username, password=settings.mqtt_password)
    run.osm_pbf, run.cache_dir = settings.osm_pbf, settings.data_dir / "roads"
    stop = _stop_event()
    if args.city_provision:
        from ingest import mqtt_auth

        async with _database(settings) as db:
            if run.username is None and run.shares_account:
                # As `simulate cars --provision`: the broker of `vigil up` admits only known accounts.
                run.username = "vigil-simulator"
                run.password = await mqtt_auth.issue_account(db, "vigil-simulator", "simulator")
            run.db = db
            final = await simulate_city(run, network, stop=stop)
    else:
        run.own_credentials = 0
        final = await simulate_city(run, network, stop=stop)
    print(f"done: {final.messages} messages, {final.expected_rows['fixes']} fixes and "
          f"{final.expected_rows['device_events']} device events in {final.sim_s} simulated s; "
          f"ground truth in {run.truth_dir}")
    return 0


@asynccontextmanager
async def _database(settings: Settings):
    from storage import Database, EmbeddedPostgres

    embedded = None
    url = settings.database_url
    if not url:
        embedded = EmbeddedPostgres(settings.data_dir)
        url = await embedded.start()
    db = await Database.open(url, partitioning=settings.partitioning, ahead_days=settings.partitions_ahead_days)
    try:
        yield db
    finally:
        await db.close()
        if embedded is not None:
            await embedded.stop()


async def _migrate(settings: Settings, args) -> int:
    async with _database(settings) as db:
        print(f"database migrated; fixes table uses {db.fixes_mode} partitioning")
    return 0


async def _devices(settings: Settings, args) -> int:
    from ingest import mqtt_auth
    from storage import devices

    ids = [*args.device_ids, *args.more_ids]
    if not ids:
        raise ConfigError("name at least one device id")
    async with _database(settings) as db:
        try:
            provisioned = await devices.provision(db, ids, kind=args.kind, owner=args.owner, timezone=args.timezone,
                                                  status=args.status)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        passwords = await mqtt_auth.issue_device_credentials(db, ids)
    print("device\tkind\tstatus\tMQTT username\tMQTT password (shown once)")
    for d in provisioned:
        print(f"{d.device_id}\t{d.kind}\t{d.status}\t{mqtt_auth.broker_username(d.device_id)}\t"
              f"{passwords[d.device_id]}")
    return 0


async def _accounts(settings: Settings, args) -> int:
    return await accounts_cli.run(settings, args, _database)


async def _simulate(settings: Settings, args) -> int:
    if args.what is None:
        if args.scenario != "city":
            raise ConfigError("name what to simulate: `vigil simulate cars …` or "
                              "`vigil simulate --scenario city …`")
        return await _simulate_city(settings, args)
    from simulators.publisher import run_cars

    if args.rate <= 0:
        raise SystemExit("vigil simulate: --rate must be positive")
    ids = [f"{args.prefix}{i:05d}" for i in range(1, args.count + 1)]
    user, password = settings.mqtt_username, settings.mqtt_password
    if args.provision:
        from ingest import mqtt_auth
        from storage import devices

        async with _database(settings) as db:
            await devices.provision(db, ids, kind="car")
            if user is None:
                # The broker `vigil up` runs admits only known accounts: one that may publish for every
                # car. Its broker picks new accounts up within a few seconds; connecting retries meanwhile.
                user, password = "vigil-simulator", await mqtt_auth.issue_account(db, "vigil-simulator", "simulator")
    mqtt_url = settings.mqtt_url or "mqtt://127.0.0.1:1883"
    stop = _stop_event()
    last = [0]

    def progress(n: int) -> None:
        if n - last[0] >= 10_000 or (args.fixes and n == args.fixes * len(ids)):
            last[0] = n
            print(f"published {n} fixes", flush=True)

    for attempt in range(8):
        try:
            n = await run_cars(
                mqtt_url, ids, fixes_per_car=args.fixes, interval_s=1.0 / args.rate, realtime=not args.fast,
                seed=args.seed, progress=progress, stop=stop, username=user, password=password,
            )
            break
        except VigilError as exc:
            if attempt == 7 or last[0]:
                raise
            print(f"broker refused or unreachable ({exc}); retrying", flush=True)
            await asyncio.sleep(1.5)
    print(f"done: {n} fixes from {len(ids)} cars to {mqtt_url}")
    return 0


async def _certificates(settings: Settings, args) -> int:
    from pathlib import Path

    from certificates.keys import KeyStore
    from certificates.signing import verify_document

    key_dir = Path(getattr(args, "keys", None) or settings.certificate_key_dir
                   or settings.data_dir / "certificate-keys")
    store = KeyStore(key_dir)
    if args.action == "rotate-key":
        new, old = store.rotate()
        print(f"active certificate key: {new}" + (f" (retired {old}; it still verifies)" if old else ""))
        return 0
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"vigil: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    verdict = verify_document(data, store.public_key)
    if not verdict.valid:
        print(f"INVALID ({verdict.format}): {verdict.reason}: {verdict.detail}")
        return 1
    cert = verdict.certificate
    print(f"VALID ({verdict.format}): certificate {cert['id']} ({cert['kind']}) for vehicle {cert['vehicle_id']}, "
          f"issued {cert['issued_at']}, signed by {', '.join(dict.fromkeys(verdict.key_ids))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
