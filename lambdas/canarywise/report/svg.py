"""Chart geometry for the report's inline SVG: a step line with an optional band, over time.

The HTML report must be one self-contained file (it is stored in S3 and opened from the approval request), and
the Lambda that writes it carries no plotting library, so charts are drawn as SVG by the template from the
coordinates computed here. Each check's values hold until the next check (a step chart); the last one is drawn
for one check interval.

Example
-------
>>> chart = step_chart([(0.0, 1.0, 0.5, 1.5), (0.1, 0.8, 0.4, 1.2)], hold=0.1, hlines=[(0.0, "0", "zero")],
...                    vlines=[(0.0, "5%")], marker=None, x_label="hours", y_label="pt")
>>> chart.line.startswith("M")
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# (hours, value, band low or None = unbounded, band high or None)
Point = tuple[float, float, float | None, float | None]

_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 14, 40


@dataclass(frozen=True)
class Chart:
    """Everything the template draws, in SVG user units (the view box is width × height)."""

    width: int
    height: int
    plot: tuple[float, float, float, float]  # left, top, right, bottom of the plotting area
    line: str  # path data of the estimate
    band: str  # path data of the confidence band ("" without one)
    hlines: list[tuple[float, str, str]]  # y, label, css class
    vlines: list[tuple[float, str]]  # x, label (stage boundaries)
    marker: tuple[float, float, str] | None  # x, y, label (the decision)
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    x_label: str
    y_label: str


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    span = high - low
    if span <= 0:
        return [low]
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def step_chart(
    points: Sequence[Point],
    *,
    hold: float,
    hlines: Sequence[tuple[float, str, str]],
    vlines: Sequence[tuple[float, str]],
    marker: tuple[float, str] | None,
    x_label: str,
    y_label: str,
    width: int = 760,
    height: int = 300,
) -> Chart:
    """Lay out `points` as a step line (and band) with horizontal reference lines and stage boundaries."""
    xs = [p[0] for p in points] + [points[-1][0] + hold]
    x_max = max([*xs, marker[0] if marker else 0.0, 0.1]) * 1.02
    # The first looks have very wide bands: scale the axis to the later ones (and the reference lines).
    settled = points[len(points) // 5 :]
    shown = [p[1] for p in points] + [h[0] for h in hlines]
    shown += [v for p in settled for v in (p[2], p[3]) if v is not None]
    y_low, y_high = min(shown), max(shown)
    pad = (y_high - y_low) * 0.1 or 1.0
    y_low, y_high = y_low - pad, y_high + pad
    left, top, right, bottom = _LEFT, _TOP, width - _RIGHT, height - _BOTTOM

    def x(value: float) -> float:
        return round(left + (right - left) * value / x_max, 1)

    def y(value: float | None, unbounded: float) -> float:
        value = unbounded if value is None else min(max(value, y_low), y_high)
        return round(bottom - (bottom - top) * (value - y_low) / (y_high - y_low), 1)

    def steps(values: Sequence[float | None], unbounded: float) -> list[tuple[float, float]]:
        path: list[tuple[float, float]] = []
        for i, value in enumerate([*values, values[-1]]):
            if i:
                path.append((x(xs[i]), path[-1][1]))
            path.append((x(xs[i]), y(value, unbounded)))
        return path

    line = steps([p[1] for p in points], y_low)
    band = ""
    if any(p[2] is not None or p[3] is not None for p in points):
        upper = steps([p[3] for p in points], y_high)
        lower = steps([p[2] for p in points], y_low)
        band = _path(upper + lower[::-1]) + " Z"
    mark = None
    if marker is not None:
        nearest = min(points, key=lambda p: abs(p[0] - marker[0]))
        mark = (x(marker[0]), y(nearest[1], y_low), marker[1])
    return Chart(
        width=width,
        height=height,
        plot=(left, top, right, bottom),
        line=_path(line),
        band=band,
        hlines=[(y(v, y_low), label, css) for v, label, css in hlines if y_low <= v <= y_high],
        vlines=[(x(h), label) for h, label in vlines],
        marker=mark,
        x_ticks=[(x(t), f"{t:g}") for t in _nice_ticks(0.0, x_max)],
        y_ticks=[(y(t, y_low), f"{t:+.3g}") for t in _nice_ticks(y_low, y_high)],
        x_label=x_label,
        y_label=y_label,
    )


def _path(points: Sequence[tuple[float, float]]) -> str:
    return "M" + " L".join(f"{px},{py}" for px, py in points)
