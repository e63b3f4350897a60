"""In-process counters, rendered in the Prometheus text format at ``/metrics``."""

from __future__ import annotations

from collections import Counter


class Metrics:
    """Monotonic counters keyed by (name, label value); one instance per process, passed in."""

    def __init__(self) -> None:
        self._counters: dict[str, Counter[str]] = {}
        self._help: dict[str, tuple[str, str]] = {}

    def describe(self, name: str, label: str, text: str) -> None:
        self._help[name] = (label, text)
        self._counters.setdefault(name, Counter())

    def inc(self, name: str, value: str = "", by: int = 1) -> None:
        self._counters.setdefault(name, Counter())[value] += by

    def get(self, name: str, value: str = "") -> int:
        return self._counters.get(name, Counter())[value]

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {name: dict(c) for name, c in self._counters.items()}

    def render(self) -> str:
        lines = []
        for name, counter in sorted(self._counters.items()):
            label, text = self._help.get(name, ("", name))
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} counter")
            for value, n in sorted(counter.items()):
                labels = f'{{{label}="{value}"}}' if label and value else ""
                lines.append(f"{name}{labels} {n}")
        return "\n".join(lines) + "\n"
