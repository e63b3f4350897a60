"""Device simulators that publish Vigil payloads over MQTT, for demos, load tests and end-to-end tests.

Public API:

- :mod:`simulators.cars` (pure, vectorised, seeded): :class:`CarState`, :func:`initial_state`,
  :func:`step`, :func:`sample`, :func:`fixes_from_sample`, :func:`encode_fix_message`, :func:`fix_topic`.
- :mod:`simulators.publisher` (async MQTT adapter): :func:`run_cars`.

The city scenario (docs/simulators.md), imported from its modules:

- pure, vectorised, seeded: :mod:`simulators.network` (places and paths on the driving graph),
  :mod:`simulators.fleet` (cars on the roads), :mod:`simulators.pets`, :mod:`simulators.homes`,
  :mod:`simulators.wire` (topics and payloads), :mod:`simulators.city` (:class:`~simulators.city.City`,
  one simulated second per ``tick()``);
- I/O: :mod:`simulators.truth_log` (ground truth files), :mod:`simulators.city_publisher` (provisioning,
  credentials, MQTT), :mod:`simulators.city_run` (what ``vigil simulate --scenario city`` runs).
"""

from simulators.cars import (
    CarState,
    encode_fix_message,
    fix_topic,
    fixes_from_sample,
    initial_state,
    sample,
    step,
)
from simulators.publisher import run_cars

__all__ = [
    "CarState",
    "encode_fix_message",
    "fix_topic",
    "fixes_from_sample",
    "initial_state",
    "run_cars",
    "sample",
    "step",
]
