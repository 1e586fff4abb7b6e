"""Charts as inline SVG strings, for server-rendered pages.

Why SVG built from strings: the pages load no JavaScript and no CDN, and a chart is a
handful of lines and rectangles. Templates mark the result safe (``{{ svg|safe }}``), so
this module is the escaping boundary: every piece of caller-supplied text (titles, axis
labels, series names, bar labels, formatted values) goes through ``_text``/``html.escape``
here, and nothing else may be trusted by the template.

Styling uses presentation attributes (``stroke=``, ``fill=``) rather than ``style=``: they
give a readable chart without any CSS, yet any stylesheet rule on the ``chart-*`` classes
overrides them. Colours come from the Okabe-Ito palette, which stays distinguishable for
the common forms of colour blindness.
"""

import html
import math
import numbers
import re

__all__ = ["bar_chart", "line_chart", "reliability_diagram"]

# Okabe-Ito, minus yellow (too faint on white) and black (used for axes).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9")
TEXT_COLOUR = "#333333"
AXIS_COLOUR = "#666666"
GRID_COLOUR = "#e5e5e5"
FONT_SIZE = 11
CHAR_WIDTH = 6.2  # rough advance of one character at FONT_SIZE, for layout only
LABEL_MAX_CHARS = 28
EMPTY_TEXT = "no data yet"

# Characters XML 1.0 forbids even when escaped; html.escape leaves them alone, and one of
# them in a label would make the whole page's SVG unparsable.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _n(value: float) -> str:
    """A coordinate for an attribute: two decimals at most, no trailing zeros, no '-0'."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _text(value: object) -> str:
    """Caller-supplied text made safe for element content and double-quoted attributes."""
    return html.escape(_XML_INVALID.sub("", str(value)), quote=True)


def _truncate(label: str, limit: int = LABEL_MAX_CHARS) -> str:
    """Cut before escaping, so an entity is never split and the limit counts what is seen."""
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"


def _finite(value: object) -> bool:
    """Real and finite; numbers.Real so NumPy scalars from training code count too."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _open(kind: str, title: str, width: float, height: float) -> list[str]:
    """Root element plus <title>: role and aria-label make screen readers announce one image."""
    label = _text(title)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {kind}" role="img" '
        f'aria-label="{label}" width="{_n(width)}" height="{_n(height)}" '
        f'viewBox="0 0 {_n(width)} {_n(height)}" font-family="system-ui, sans-serif" '
        f'font-size="{FONT_SIZE}" fill="{TEXT_COLOUR}">',
        f"<title>{label}</title>",
        f'<text class="chart-title" x="0" y="14" font-size="{FONT_SIZE + 2}" '
        f'font-weight="600">{label}</text>',
    ]


def _frame(x: float, y: float, w: float, h: float) -> str:
    return (
        f'<rect class="chart-frame" x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}" '
        f'fill="none" stroke="{GRID_COLOUR}"/>'
    )


def _empty(cx: float, cy: float) -> str:
    return (
        f'<text class="chart-empty" x="{_n(cx)}" y="{_n(cy)}" text-anchor="middle" '
        f'dominant-baseline="middle" fill="{AXIS_COLOUR}" font-style="italic">{EMPTY_TEXT}</text>'
    )


# --- ticks -------------------------------------------------------------------------------


def _step_value(index: int, mantissa: int, exponent: int) -> float:
    """index × mantissa × 10^exponent, dividing by an exact integer for negative exponents
    so that e.g. 3 × 0.1 comes out as the float 0.3, not 0.30000000000000004."""
    if exponent >= 0:
        return float(index * mantissa * 10**exponent)
    return index * mantissa / 10**-exponent


def _nice_ticks(low: float, high: float) -> tuple[list[float], int]:
    """4-6 ticks on a 1/2/5 × 10^k step whose first ≤ low and last ≥ high, so the axis
    domain is the tick span and every point sits inside it. Also returns the decimals a
    label needs to tell the ticks apart."""
    if high < low:
        low, high = high, low
    if high - low <= abs(low) * 1e-9:  # one value (or float noise): pad so it is drawable
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    top_exponent = math.floor(math.log10(high - low))
    fallback: tuple[int, int, int, int] | None = None
    for exponent in range(top_exponent - 2, top_exponent + 2):
        for mantissa in (1, 2, 5):
            first = math.floor(low / (mantissa * 10.0**exponent))
            while _step_value(first, mantissa, exponent) > low:
                first -= 1
            while _step_value(first + 1, mantissa, exponent) <= low:
                first += 1
            last = math.ceil(high / (mantissa * 10.0**exponent))
            while _step_value(last, mantissa, exponent) < high:
                last += 1
            while _step_value(last - 1, mantissa, exponent) >= high:
                last -= 1
            count = last - first + 1
            if 4 <= count <= 6:
                return _tick_list(first, last, mantissa, exponent)
            if count < 4 and fallback is None:
                fallback = (first, last, mantissa, exponent)
    # Not reached for ordinary ranges; widen the coarsest too-sparse step to four ticks.
    first, last, mantissa, exponent = fallback or (0, 3, 1, top_exponent)
    return _tick_list(first, max(last, first + 3), mantissa, exponent)


def _tick_list(first: int, last: int, mantissa: int, exponent: int) -> tuple[list[float], int]:
    ticks = [_step_value(i, mantissa, exponent) for i in range(first, last + 1)]
    return ticks, max(0, -exponent)


def _tick_label(value: float, decimals: int) -> str:
    if decimals > 6 or abs(value) >= 1e9:
        return f"{value:.3g}"
    return f"{value:.{decimals}f}"


# --- line chart --------------------------------------------------------------------------


def line_chart(
    series: dict[str, list[tuple[float, float]]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: float = 560,
    height: float = 260,
) -> str:
    """Loss curves (epoch vs loss) and learning curves, one polyline per named series.

    Points with a NaN or infinite coordinate are dropped rather than breaking the line, so
    a diverged epoch does not blank the whole chart; points are drawn in x order. A lone
    point also gets a dot, since a one-point polyline is invisible. With no finite point at
    all the frame is drawn with "no data yet", so the page layout does not jump.
    """
    cleaned = [
        (name, sorted((x, y) for x, y in points if _finite(x) and _finite(y)))
        for name, points in series.items()
    ]
    all_points = [p for _, points in cleaned for p in points]
    parts = _open("line-chart", title, width, height)

    legend_rows = _legend_rows(
        [(i, name) for i, (name, _) in enumerate(cleaned)] if all_points else [], width
    )
    top = 26.0
    bottom_space = 40 + 16 * len(legend_rows)
    if all_points:
        x_ticks, x_decimals = _nice_ticks(
            min(p[0] for p in all_points), max(p[0] for p in all_points)
        )
        y_ticks, y_decimals = _nice_ticks(
            min(p[1] for p in all_points), max(p[1] for p in all_points)
        )
        y_tick_labels = [_tick_label(v, y_decimals) for v in y_ticks]
        left = 24 + CHAR_WIDTH * max(len(s) for s in y_tick_labels)
    else:
        left = 40.0
    right = 12 + CHAR_WIDTH * 2  # room for half of the last x tick label
    plot_w = max(width - left - right, 10.0)
    plot_h = max(height - top - bottom_space, 10.0)
    plot_bottom = top + plot_h

    parts.append(_frame(left, top, plot_w, plot_h))
    parts.append(
        f'<text class="chart-axis-label" x="{_n(left + plot_w / 2)}" '
        f'y="{_n(plot_bottom + 30)}" text-anchor="middle">{_text(x_label)}</text>'
    )
    parts.append(
        f'<text class="chart-axis-label" x="12" y="{_n(top + plot_h / 2)}" text-anchor="middle" '
        f'transform="rotate(-90 12 {_n(top + plot_h / 2)})">{_text(y_label)}</text>'
    )
    if not all_points:
        parts.append(_empty(left + plot_w / 2, top + plot_h / 2))
        parts.append("</svg>")
        return "\n".join(parts)

    x0, x1 = x_ticks[0], x_ticks[-1]
    y0, y1 = y_ticks[0], y_ticks[-1]

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return plot_bottom - (y - y0) / (y1 - y0) * plot_h

    parts.append(f'<g class="chart-grid" stroke="{GRID_COLOUR}">')
    parts.extend(
        f'<line x1="{_n(left)}" y1="{_n(sy(v))}" x2="{_n(left + plot_w)}" y2="{_n(sy(v))}"/>'
        for v in y_ticks[1:]
    )
    parts.append("</g>")
    parts.append(f'<g class="chart-axis chart-axis-x" stroke="{AXIS_COLOUR}">')
    parts.append(
        f'<line x1="{_n(left)}" y1="{_n(plot_bottom)}" x2="{_n(left + plot_w)}" '
        f'y2="{_n(plot_bottom)}"/>'
    )
    for value in x_ticks:
        x = sx(value)
        parts.append(
            f'<line x1="{_n(x)}" y1="{_n(plot_bottom)}" x2="{_n(x)}" y2="{_n(plot_bottom + 4)}"/>'
        )
        parts.append(
            f'<text class="chart-tick" x="{_n(x)}" y="{_n(plot_bottom + 15)}" stroke="none" '
            f'fill="{TEXT_COLOUR}" text-anchor="middle">{_tick_label(value, x_decimals)}</text>'
        )
    parts.append("</g>")
    parts.append(f'<g class="chart-axis chart-axis-y" stroke="{AXIS_COLOUR}">')
    parts.append(f'<line x1="{_n(left)}" y1="{_n(top)}" x2="{_n(left)}" y2="{_n(plot_bottom)}"/>')
    for value, label in zip(y_ticks, y_tick_labels, strict=True):
        y = sy(value)
        parts.append(f'<line x1="{_n(left - 4)}" y1="{_n(y)}" x2="{_n(left)}" y2="{_n(y)}"/>')
        parts.append(
            f'<text class="chart-tick" x="{_n(left - 6)}" y="{_n(y)}" stroke="none" '
            f'fill="{TEXT_COLOUR}" text-anchor="end" dominant-baseline="middle">{label}</text>'
        )
    parts.append("</g>")

    for index, (name, points) in enumerate(cleaned):
        if not points:
            continue
        css, colour = f"chart-series-{index % len(PALETTE)}", PALETTE[index % len(PALETTE)]
        coords = " ".join(f"{_n(sx(x))},{_n(sy(y))}" for x, y in points)
        parts.append(f'<g class="chart-series {css}">')
        parts.append(f"<title>{_text(name)}</title>")
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2" '
            f'stroke-linejoin="round" stroke-linecap="round"/>'
        )
        if len(points) == 1:
            x, y = points[0]
            parts.append(f'<circle cx="{_n(sx(x))}" cy="{_n(sy(y))}" r="3" fill="{colour}"/>')
        parts.append("</g>")

    legend_top = plot_bottom + 48
    for row_index, row in enumerate(legend_rows):
        y = legend_top + 16 * row_index
        parts.append('<g class="chart-legend">')
        for x, index, name in row:
            colour = PALETTE[index % len(PALETTE)]
            parts.append(
                f'<g class="chart-legend-item chart-series-{index % len(PALETTE)}">'
                f'<line x1="{_n(x)}" y1="{_n(y)}" x2="{_n(x + 16)}" y2="{_n(y)}" '
                f'stroke="{colour}" stroke-width="2"/>'
                f'<text x="{_n(x + 20)}" y="{_n(y)}" dominant-baseline="middle">'
                f"{_text(_truncate(name))}</text></g>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


def _legend_rows(items: list[tuple[int, str]], width: float) -> list[list[tuple[float, int, str]]]:
    """Lay legend entries left to right, wrapping rows at the chart width."""
    rows: list[list[tuple[float, int, str]]] = []
    x = width  # forces a new row for the first item
    for index, name in items:
        item_width = 20 + CHAR_WIDTH * len(_truncate(name)) + 16
        if x + item_width > width and (not rows or rows[-1]):
            rows.append([])
            x = 0.0
        rows[-1].append((x, index, name))
        x += item_width
    return rows


# --- reliability diagram -----------------------------------------------------------------


def reliability_diagram(
    bins: list[dict],
    *,
    title: str,
    width: float = 320,
    height: float = 320,
) -> str:
    """Calibration at a glance: bars at the diagonal mean confidence matches accuracy.

    Each bar spans its confidence bin and rises to the bin's accuracy; the dot marks where
    the bin's predictions actually sit (mean confidence), which matters for wide bins.
    Fainter bars hold fewer predictions, so a wild bar from three samples does not look as
    authoritative as one from three thousand. Empty bins carry no information and are not
    drawn; the plot area is kept square so the diagonal is at 45 degrees.
    """
    usable = [
        b
        for b in bins
        if _finite(b["count"])
        and b["count"] > 0
        and all(
            _finite(b[key])
            for key in ("confidence_low", "confidence_high", "mean_confidence", "accuracy")
        )
    ]
    parts = _open("reliability-diagram", title, width, height)
    left, top, right, bottom = 44.0, 26.0, 12.0, 52.0
    size = max(min(width - left - right, height - top - bottom), 10.0)
    plot_bottom = top + size

    def sx(v: float) -> float:
        return left + min(max(v, 0.0), 1.0) * size

    def sy(v: float) -> float:
        return plot_bottom - min(max(v, 0.0), 1.0) * size

    parts.append(_frame(left, top, size, size))
    ticks = (0.0, 0.25, 0.5, 0.75, 1.0)
    parts.append(f'<g class="chart-grid" stroke="{GRID_COLOUR}">')
    parts.extend(
        f'<line x1="{_n(left)}" y1="{_n(sy(v))}" x2="{_n(left + size)}" y2="{_n(sy(v))}"/>'
        for v in ticks[1:]
    )
    parts.append("</g>")

    max_count = max((b["count"] for b in usable), default=0)
    for b in usable:
        low, high = sorted((b["confidence_low"], b["confidence_high"]))
        accuracy, count = b["accuracy"], b["count"]
        opacity = 0.35 + 0.65 * count / max_count
        x, y = sx(low), sy(accuracy)
        tooltip = (
            f"{low:.2f}\u2013{high:.2f}: accuracy {accuracy:.2f}, "
            f"mean confidence {b['mean_confidence']:.2f}, n={count:,}"
        )
        parts.append(
            f'<rect class="chart-bar" x="{_n(x)}" y="{_n(y)}" width="{_n(sx(high) - x)}" '
            f'height="{_n(plot_bottom - y)}" fill="{PALETTE[5]}" fill-opacity="{_n(opacity)}" '
            f'stroke="#ffffff" data-count="{int(count)}"><title>{_text(tooltip)}</title></rect>'
        )
    # Diagonal, axes and markers after the bars, so no bar hides them.
    parts.append(
        f'<line class="chart-diagonal" x1="{_n(sx(0))}" y1="{_n(sy(0))}" x2="{_n(sx(1))}" '
        f'y2="{_n(sy(1))}" stroke="{AXIS_COLOUR}" stroke-dasharray="4 4"/>'
    )
    parts.append(f'<g class="chart-axis" stroke="{AXIS_COLOUR}">')
    parts.append(
        f'<line x1="{_n(left)}" y1="{_n(plot_bottom)}" x2="{_n(left + size)}" '
        f'y2="{_n(plot_bottom)}"/>'
    )
    parts.append(f'<line x1="{_n(left)}" y1="{_n(top)}" x2="{_n(left)}" y2="{_n(plot_bottom)}"/>')
    for value in ticks:
        label = f"{value:g}"
        x, y = sx(value), sy(value)
        parts.append(
            f'<line x1="{_n(x)}" y1="{_n(plot_bottom)}" x2="{_n(x)}" y2="{_n(plot_bottom + 4)}"/>'
            f'<text class="chart-tick chart-tick-x" x="{_n(x)}" y="{_n(plot_bottom + 15)}" '
            f'stroke="none" fill="{TEXT_COLOUR}" text-anchor="middle">{label}</text>'
            f'<line x1="{_n(left - 4)}" y1="{_n(y)}" x2="{_n(left)}" y2="{_n(y)}"/>'
            f'<text class="chart-tick chart-tick-y" x="{_n(left - 6)}" y="{_n(y)}" stroke="none" '
            f'fill="{TEXT_COLOUR}" text-anchor="end" dominant-baseline="middle">{label}</text>'
        )
    parts.append("</g>")
    parts.append(
        f'<text class="chart-axis-label" x="{_n(left + size / 2)}" y="{_n(plot_bottom + 30)}" '
        f'text-anchor="middle">confidence</text>'
    )
    parts.append(
        f'<text class="chart-axis-label" x="12" y="{_n(top + size / 2)}" text-anchor="middle" '
        f'transform="rotate(-90 12 {_n(top + size / 2)})">accuracy</text>'
    )
    for b in usable:
        parts.append(
            f'<circle class="chart-marker" cx="{_n(sx(b["mean_confidence"]))}" '
            f'cy="{_n(sy(b["accuracy"]))}" r="3" fill="{PALETTE[3]}"/>'
        )
    if not usable:
        parts.append(_empty(left + size / 2, top + size * 0.3))
    total = int(sum(b["count"] for b in usable))
    noun = "prediction" if total == 1 else "predictions"
    parts.append(
        f'<text class="chart-caption" x="{_n(left + size / 2)}" y="{_n(plot_bottom + 46)}" '
        f'text-anchor="middle" fill="{AXIS_COLOUR}">n = {total:,} {noun}</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


# --- bar chart ---------------------------------------------------------------------------


def bar_chart(
    bars: list[tuple[str, float]],
    *,
    title: str,
    value_format: str = "{:.2f}",
    width: float = 560,
    bar_height: float = 18,
    max_value: float | None = None,
) -> str:
    """Horizontal bars for per-label values (accuracy by channel, exposure per source).

    Horizontal because the labels are free text of any length; they are cut to 28
    characters with an ellipsis, the full label kept in a hover <title>. The height follows
    from the number of bars. Pass max_value (e.g. 1.0 for accuracy) so charts of the same
    quantity share a scale; otherwise the largest value fills the width. Values outside
    [0, max_value] are clamped for the bar but printed as given; non-finite values get no
    bar and a dash.
    """
    gap = 6.0
    top = 26.0
    rows = [
        (_truncate(str(label)), str(label), value, _format_value(value, value_format))
        for label, value in bars
    ]
    height = top + max(len(rows), 1) * (bar_height + gap) + 4
    parts = _open("bar-chart", title, width, height)
    if not rows:
        parts.append(_frame(0, top, width, bar_height + gap))
        parts.append(_empty(width / 2, top + (bar_height + gap) / 2))
        parts.append("</svg>")
        return "\n".join(parts)

    label_w = 8 + CHAR_WIDTH * max(len(shown) for shown, _, _, _ in rows)
    value_w = 14 + CHAR_WIDTH * max(len(text) for _, _, _, text in rows)
    bar_left = label_w
    bar_span = max(width - label_w - value_w, 20.0)
    finite_values = [value for _, value in bars if _finite(value)]
    scale = max_value if max_value is not None and max_value > 0 else None
    if scale is None:
        scale = max((v for v in finite_values if v > 0), default=1.0)

    for index, (shown, full, value, text) in enumerate(rows):
        y = top + index * (bar_height + gap) + gap / 2
        mid = y + bar_height / 2
        fraction = min(max(value / scale, 0.0), 1.0) if _finite(value) else 0.0
        parts.append(f'<g class="chart-row"><title>{_text(full)}: {_text(text)}</title>')
        parts.append(
            f'<text class="chart-label" x="{_n(label_w - 8)}" y="{_n(mid)}" text-anchor="end" '
            f'dominant-baseline="middle">{_text(shown)}</text>'
        )
        parts.append(
            f'<rect class="chart-bar" x="{_n(bar_left)}" y="{_n(y)}" '
            f'width="{_n(fraction * bar_span)}" height="{_n(bar_height)}" fill="{PALETTE[0]}"/>'
        )
        parts.append(
            f'<text class="chart-value" x="{_n(width - 2)}" y="{_n(mid)}" text-anchor="end" '
            f'dominant-baseline="middle">{_text(text)}</text>'
        )
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


def _format_value(value: float, value_format: str) -> str:
    """A dash for NaN/inf: "nan" next to a bar reads like a label, not a missing value."""
    return value_format.format(value) if _finite(value) else "\u2013"
