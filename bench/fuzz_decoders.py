"""Fuzz run of every decoder on the route table: a million inputs, counted per protocol.

Protocols: the Vigil car JSON, home-kit event and heartbeat, pet-tracker fix, SOS and heartbeat, OwnTracks,
and Teltonika Codec 8 and 8E, each through its :class:`ingest.protocols.Handler` (what the gateway calls).
Inputs per protocol, from a seeded ``random.Random``:

* ``valid``: a schema-valid frame with random values; it must decode with every fix / event it carries
  and none refused, or it counts as ``valid_rejected``;
* ``random``: random bytes (Teltonika: also random records inside a correct header, length and CRC);
* ``soup``: random JSON tokens glued together;
* ``bytes``: a valid frame after 1-4 byte edits (flip, overwrite, insert, token insert, delete, truncate,
  repeat);
* ``struct``: a valid frame edited where it parses: JSON values replaced, removed or added anywhere in
  the tree; Teltonika data fields edited and then given a correct length and CRC, so the record
  parser meets the edit rather than the CRC check.

Each input's outcome is ``decoded`` (then the rows are turned into columns as :mod:`ingest.assemble`
does), ``rejected`` with a reason (which must be snake_case), or a ``crash``: any other exception, kept
with its input as hex and traceback. NumPy float32 overflows while building columns are counted apart
(``overflow``): values the JSON allows but a float32 column turns into inf.

Run from the repository root: ``python bench/fuzz_decoders.py [--count N] [--seed S] [--workers W]``.
The last line is ``RESULT {json}``; the exit status is 1 when there were crashes or valid rejections.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import random
import re
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from ingest import protocols, teltonika  # noqa: E402
from vigil.errors import RejectedInput  # noqa: E402

PROTOCOLS: dict[str, protocols.Handler] = {
    "vigil_car": protocols.VIGIL_CAR_FIX,
    "home_event": protocols.HOME_EVENT,
    "home_heartbeat": protocols.HOME_HEARTBEAT,
    "pet_fix": protocols.PET_FIX,
    "pet_sos": protocols.PET_SOS,
    "pet_heartbeat": protocols.PET_HEARTBEAT,
    "owntracks": protocols.OWNTRACKS,
    "teltonika_8": protocols.TELTONIKA,
    "teltonika_8e": protocols.TELTONIKA,
}
#: Input kinds and their weights (see the module docstring).
KINDS = (("valid", 0.10), ("random", 0.12), ("soup", 0.08), ("bytes", 0.35), ("struct", 0.35))
CHUNK = 20_000
KEEP_EXAMPLES = 5
SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")

from bench.fuzz_inputs import (  # noqa: E402
    TOKENS,
    avl_records,
    JSON_VALID,
    CODECS,
    AVL_POOL,
    to_bytes,
    byte_edits,
    tree_edits,
    avl_struct_edit,
    avl_random,
)


_OVERFLOWS = [0]


def _count_overflow(_kind, _flag) -> None:
    _OVERFLOWS[0] += 1


def new_stats() -> dict:
    return {"inputs": 0, "decoded": 0, "rejected": Counter(), "crashes": 0, "crash_examples": [], "valid": 0,
            "valid_rejected": 0, "valid_rejected_examples": [], "overflow": 0, "overflow_examples": [],
            "by_kind": Counter(), "slowest_us": 0.0, "slowest_hex": ""}


def check(handler: protocols.Handler, payload: bytes) -> tuple[str, str | None, int]:
    """``("decoded", None, items)`` or ``("rejected", reason, 0)``; other exceptions propagate."""
    try:
        out = handler.decode(payload)
    except RejectedInput as exc:
        if not (isinstance(exc.reason, str) and SNAKE.fullmatch(exc.reason)):
            raise AssertionError(f"reason {exc.reason!r} is not snake_case") from exc
        return "rejected", exc.reason, 0
    n = len(out.positions)
    if out.columns is None:
        if len(out.rows) != n:
            raise AssertionError(f"{len(out.rows)} rows, {n} positions")
        if out.rows:
            cols = handler.to_columns(out.rows)
            if any(np.asarray(v).shape != (n,) for v in cols.values()):
                raise AssertionError("to_columns built columns of the wrong length")
    elif any(np.asarray(v).shape != (n,) for v in out.columns.values()):
        raise AssertionError("decoded columns of the wrong length")
    if out.bad:
        return "decoded", "partly_refused", n + len(out.events)
    return "decoded", None, n + len(out.events)


def run_chunk(args: tuple[int, int, int]) -> dict[str, dict]:
    seed, index, count = args
    rng = random.Random(f"vigil-fuzz:{seed}:{index}")
    np.seterr(over="call")
    np.seterrcall(_count_overflow)
    pools = {name: [avl_records(rng, codec) for _ in range(AVL_POOL)] for name, codec in CODECS.items()}
    pools = {name: [(teltonika.encode(r), n) for r, n in pool] for name, pool in pools.items()}
    stats = {name: new_stats() for name in PROTOCOLS}
    names = list(PROTOCOLS)
    kinds, weights = zip(*KINDS)
    for _ in range(count):
        name = rng.choice(names)
        kind = rng.choices(kinds, weights)[0]
        if name in CODECS:
            frame, expected = rng.choice(pools[name])
            body = None
        else:
            body, expected = JSON_VALID[name](rng)
            frame = to_bytes(rng, body)
        if kind == "valid":
            payload = frame
        elif kind == "random":
            payload = avl_random(rng, CODECS[name]) if name in CODECS else rng.randbytes(rng.randint(0, 256))
        elif kind == "soup":
            payload = b"".join(rng.choice(TOKENS) for _ in range(rng.randint(1, 40)))
        elif kind == "bytes":
            payload = byte_edits(rng, frame)
        elif name in CODECS:
            payload = avl_struct_edit(rng, frame)
        else:
            payload = json.dumps(tree_edits(rng, body)).encode()
        s = stats[name]
        s["inputs"] += 1
        s["by_kind"][kind] += 1
        s["valid"] += kind == "valid"
        before = _OVERFLOWS[0]
        t0 = time.perf_counter()
        try:
            outcome, reason, items = check(PROTOCOLS[name], payload)
        except Exception as exc:  # a crash: anything but RejectedInput, or a broken Decoded
            s["crashes"] += 1
            if len(s["crash_examples"]) < KEEP_EXAMPLES:
                s["crash_examples"].append({
                    "kind": kind, "hex": payload[:4096].hex(), "len": len(payload), "error": repr(exc)[:500],
                    "traceback": traceback.format_exc()[-3000:],
                })
            continue
        finally:
            elapsed = (time.perf_counter() - t0) * 1e6
            if elapsed > s["slowest_us"]:
                s["slowest_us"], s["slowest_hex"] = elapsed, payload[:256].hex()
        if _OVERFLOWS[0] != before:
            s["overflow"] += 1
            if len(s["overflow_examples"]) < 2:
                s["overflow_examples"].append(payload[:512].hex())
        if outcome == "decoded":
            s["decoded"] += 1
        else:
            s["rejected"][reason] += 1
        if kind == "valid":
            if outcome != "decoded" or reason is not None or items != expected:
                s["valid_rejected"] += 1
                if len(s["valid_rejected_examples"]) < KEEP_EXAMPLES:
                    s["valid_rejected_examples"].append({"hex": payload[:4096].hex(), "reason": reason,
                                                         "items": items, "expected": expected})
    return stats


def merge(total: dict[str, dict], part: dict[str, dict]) -> None:
    for name, s in part.items():
        t = total[name]
        for key in ("inputs", "decoded", "crashes", "valid", "valid_rejected", "overflow"):
            t[key] += s[key]
        t["rejected"].update(s["rejected"])
        t["by_kind"].update(s["by_kind"])
        for key in ("crash_examples", "valid_rejected_examples", "overflow_examples"):
            t[key].extend(s[key][: KEEP_EXAMPLES - len(t[key])])
        if s["slowest_us"] > t["slowest_us"]:
            t["slowest_us"], t["slowest_hex"] = s["slowest_us"], s["slowest_hex"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="inputs in total (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    chunks = [(args.seed, i, min(CHUNK, args.count - i * CHUNK)) for i in range(math.ceil(args.count / CHUNK))]
    total = {name: new_stats() for name in PROTOCOLS}
    started = time.perf_counter()
    if args.workers > 1 and len(chunks) > 1:
        with mp.get_context("fork").Pool(args.workers) as pool:
            for part in pool.imap_unordered(run_chunk, chunks):
                merge(total, part)
    else:
        for chunk in chunks:
            merge(total, run_chunk(chunk))
    elapsed = time.perf_counter() - started

    head = f"{'protocol':<15}{'inputs':>9}{'decoded':>9}{'rejected':>10}{'crashes':>9}{'valid':>8}" \
           f"{'valid_rej':>10}{'overflow':>9}{'slowest_ms':>11}"
    print(head)
    print("-" * len(head))
    for name, s in total.items():
        print(f"{name:<15}{s['inputs']:>9}{s['decoded']:>9}{sum(s['rejected'].values()):>10}{s['crashes']:>9}"
              f"{s['valid']:>8}{s['valid_rejected']:>10}{s['overflow']:>9}{s['slowest_us'] / 1000:>11.2f}")
    print()
    for name, s in total.items():
        reasons = ", ".join(f"{r} {n}" for r, n in s["rejected"].most_common())
        print(f"{name}: {reasons}")
    slowest = max(total, key=lambda name: total[name]["slowest_us"])
    print(f"\nslowest input: {slowest}, {total[slowest]['slowest_us'] / 1000:.2f} ms (wall clock, so it includes"
          f" scheduling and GC pauses): {total[slowest]['slowest_hex'][:512]}")
    for name, s in total.items():
        for ex in s["crash_examples"]:
            print(f"\nCRASH {name} ({ex['kind']}, {ex['len']} B): {ex['error']}\n  hex {ex['hex'][:400]}")
            print("  " + ex["traceback"].strip().replace("\n", "\n  "))
        for ex in s["valid_rejected_examples"]:
            print(f"\nVALID REJECTED {name}: {ex}")

    sums = {key: sum(s[key] for s in total.values())
            for key in ("inputs", "decoded", "crashes", "valid", "valid_rejected", "overflow")}
    sums["rejected"] = sum(sum(s["rejected"].values()) for s in total.values())
    result = {
        "count": args.count, "seed": args.seed, "workers": args.workers, "elapsed_s": round(elapsed, 2),
        "inputs_per_s": round(sums["inputs"] / elapsed), "totals": sums,
        "crashes": sums["crashes"], "valid_rejected": sums["valid_rejected"],
        "per_protocol": {
            name: {"inputs": s["inputs"], "decoded": s["decoded"], "rejected": dict(s["rejected"].most_common()),
                   "crashes": s["crashes"], "valid": s["valid"], "valid_rejected": s["valid_rejected"],
                   "overflow": s["overflow"], "by_kind": dict(s["by_kind"]),
                   "slowest_ms": round(s["slowest_us"] / 1000, 2)}
            for name, s in total.items()
        },
        "crash_examples": [{"protocol": name, "hex": ex["hex"], "error": ex["error"]}
                           for name, s in total.items() for ex in s["crash_examples"]][:KEEP_EXAMPLES],
    }
    print("RESULT " + json.dumps(result, separators=(",", ":")))
    return 1 if sums["crashes"] or sums["valid_rejected"] else 0


if __name__ == "__main__":
    sys.exit(main())
