"""In-process counters, rendered in the Prometheus text format at ``/metrics``."""

from __future__ import annotations

from collections import Counter


class Metrics:
    """Monotonic counters keyed by (name, label value); one instance per process, passed in."""

    def __init__(self) -> None:
        self._counters: dict[str, Counter[str]] = {}
        self._help: dict[str, tuple[str, str]] = {}
        self._gauges: dict[str, float] = {}
        self._mirrored: dict[str, dict[str, dict[str, int]]] = {}  # source → counters another process reported

    def describe(self, name: str, label: str, text: str, *, gauge: bool = False) -> None:
        self._help[name] = (label, text)
        if gauge:
            self._gauges.setdefault(name, 0.0)
        else:
            self._counters.setdefault(name, Counter())

    def inc(self, name: str, value: str = "", by: int = 1) -> None:
        self._counters.setdefault(name, Counter())[value] += by

    def gauge(self, name: str, value: float) -> None:
        """Set a gauge (a level, not a count): rendered with ``# TYPE name gauge``."""
        self._gauges[name] = value

    def get(self, name: str, value: str = "") -> int:
        return self._counters.get(name, Counter())[value] + sum(
            m.get(name, {}).get(value, 0) for m in self._mirrored.values())

    def counters(self) -> dict[str, dict[str, int]]:
        """This process's own counters, for another process to :meth:`mirror`."""
        return {name: dict(c) for name, c in self._counters.items()}

    def describes(self) -> dict[str, tuple[str, str]]:
        return dict(self._help)

    def mirror(self, source: str, counters: dict[str, dict[str, int]], described=None) -> None:
        """Show the latest counters of another process (``source``, e.g. the alarm process) added to
        this one's; a restarted source starts from zero again, which Prometheus reads as a reset."""
        for name, (label, text) in (described or {}).items():
            self._help.setdefault(name, (label, text))
        self._mirrored[source] = counters

    def snapshot(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {name: dict(c) for name, c in self._counters.items()}
        out.update({name: {"": level} for name, level in self._gauges.items()})
        return out

    def render(self) -> str:
        lines = []
        totals = {name: Counter(c) for name, c in self._counters.items()}
        for mirrored in self._mirrored.values():
            for name, values in mirrored.items():
                totals.setdefault(name, Counter()).update(values)
        for name, counter in sorted(totals.items()):
            label, text = self._help.get(name, ("", name))
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} counter")
            for value, n in sorted(counter.items()):
                labels = f'{{{label}="{value}"}}' if label and value else ""
                lines.append(f"{name}{labels} {n}")
        for name, level in sorted(self._gauges.items()):
            lines.append(f"# HELP {name} {self._help.get(name, ('', name))[1]}")
            lines.append(f"# TYPE {name} gauge")
            lines.append(f"{name} {level:g}")
        return "\n".join(lines) + "\n"
