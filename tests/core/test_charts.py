"""The inline-SVG charts: well-formed, accessible, escaped, and drawn to scale."""

import math
import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.charts import bar_chart, line_chart, reliability_diagram

SVG = "{http://www.w3.org/2000/svg}"
NAN, INF = float("nan"), float("inf")
HOSTILE = "<script>alert(1)</script>"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def by_class(root: ET.Element, css: str) -> list[ET.Element]:
    return [el for el in root.iter() if css in el.get("class", "").split()]


def one(root: ET.Element, css: str) -> ET.Element:
    (element,) = by_class(root, css)
    return element


def points(polyline: ET.Element) -> list[tuple[float, float]]:
    return [tuple(map(float, pair.split(","))) for pair in polyline.get("points").split()]


def ticks(root: ET.Element, axis: str) -> list[float]:
    return [float(t.text) for t in by_class(one(root, f"chart-axis-{axis}"), "chart-tick")]


def a_line_chart(series=None, **kwargs) -> str:
    series = {"train": [(1, 0.9), (2, 0.5), (3, 0.3)]} if series is None else series
    kwargs = {"title": "Loss", "x_label": "epoch", "y_label": "loss", **kwargs}
    return line_chart(series, **kwargs)


def a_bin(low, high, mean, accuracy, count) -> dict:
    return {
        "confidence_low": low,
        "confidence_high": high,
        "mean_confidence": mean,
        "accuracy": accuracy,
        "count": count,
    }


CHARTS = {
    "line-chart": lambda title: a_line_chart(title=title),
    "reliability-diagram": lambda title: reliability_diagram(
        [a_bin(0.5, 1, 0.7, 0.6, 5)], title=title
    ),
    "bar-chart": lambda title: bar_chart([("email", 0.9)], title=title),
}


# --- every chart -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CHARTS)
def test_a_chart_is_an_svg_image_with_a_title(kind):
    root = parse(CHARTS[kind]("Loss by epoch"))

    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("aria-label") == "Loss by epoch"
    assert root[0].tag == f"{SVG}title"
    assert root[0].text == "Loss by epoch"
    assert root.get("class").split() == ["chart", kind]


@pytest.mark.parametrize("kind", CHARTS)
def test_a_hostile_title_is_escaped_in_text_and_attribute(kind):
    title = 'a "quoted" & <b>bold</b> title'
    svg = CHARTS[kind](title)
    root = parse(svg)

    assert "<b>" not in svg
    assert root.get("aria-label") == title
    assert root[0].text == title
    assert not [el for el in root.iter() if el.tag.endswith("}b")]


@pytest.mark.parametrize("kind", CHARTS)
def test_numbers_in_attributes_have_at_most_two_decimals(kind):
    root = parse(CHARTS[kind]("t"))
    numeric = ("x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "width", "height")

    values = [el.get(name) for el in root.iter() for name in numeric if el.get(name) is not None]
    values += [
        v for el in root.iter(f"{SVG}polyline") for pair in el.get("points").split()
        for v in pair.split(",")
    ]  # fmt: skip

    assert values
    assert [v for v in values if not re.fullmatch(r"-?\d+(\.\d{1,2})?", v)] == []


def test_characters_xml_forbids_are_dropped_so_the_svg_still_parses():
    root = parse(bar_chart([("bell\x07 and nul\x00", 1.0)], title="t\x0b"))

    assert one(root, "chart-label").text == "bell and nul"


# --- line chart --------------------------------------------------------------------------


def test_a_polyline_has_one_point_per_finite_input_point():
    svg = a_line_chart(
        {
            "train": [(1, 0.9), (2, NAN), (3, 0.4), (4, INF), (NAN, 0.2), (5, 0.3)],
            "validation": [(1, 1.0), (2, 0.8)],
        }
    )
    root = parse(svg)

    train, validation = by_class(root, "chart-series")

    assert "chart-series-0" in train.get("class").split()
    assert len(points(train.find(f"{SVG}polyline"))) == 3
    assert "chart-series-1" in validation.get("class").split()
    assert len(points(validation.find(f"{SVG}polyline"))) == 2
    drawn = points(train.find(f"{SVG}polyline")) + points(validation.find(f"{SVG}polyline"))
    assert all(math.isfinite(v) for point in drawn for v in point)


def test_points_are_drawn_in_x_order_inside_the_frame_and_up_means_larger():
    root = parse(a_line_chart({"loss": [(20, 0.1), (0, 2.0), (10, 0.5)]}))
    frame = one(root, "chart-frame")
    left, top = float(frame.get("x")), float(frame.get("y"))
    right, bottom = left + float(frame.get("width")), top + float(frame.get("height"))

    drawn = points(root.find(f".//{SVG}polyline"))

    assert [x for x, _ in drawn] == sorted(x for x, _ in drawn)
    assert all(left <= x <= right and top <= y <= bottom for x, y in drawn)
    # x ticks run 0..20 exactly, so the first and last points sit on the frame's edges.
    assert drawn[0][0] == pytest.approx(left, abs=0.01)
    assert drawn[-1][0] == pytest.approx(right, abs=0.01)
    # The loss falls, so the line falls on screen: its y coordinate grows.
    assert drawn[0][1] < drawn[1][1] < drawn[2][1]


def assert_nice_and_covering(values: list[float], low: float, high: float) -> None:
    assert 4 <= len(values) <= 6, values
    steps = [b - a for a, b in zip(values, values[1:], strict=False)]
    step = steps[0]
    assert all(s == pytest.approx(step, rel=1e-6) for s in steps), values
    mantissa = step / 10 ** math.floor(math.log10(step) + 1e-6)  # 0.0999… is a step of 0.1
    assert any(mantissa == pytest.approx(m, rel=1e-6) for m in (1, 2, 5)), values
    assert values[0] <= low, values
    assert values[-1] >= high, values


@pytest.mark.parametrize(
    ("low", "high"),
    [(0, 1), (1, 20), (0.0123, 0.0177), (-3.5, 12.25), (1000, 1_000_000), (0.3, 0.9)],
)
def test_ticks_are_nice_numbers_that_cover_the_data(low, high):
    root = parse(a_line_chart({"s": [(low, high), (high, low)]}))

    assert_nice_and_covering(ticks(root, "x"), low, high)
    assert_nice_and_covering(ticks(root, "y"), low, high)


@settings(database=None)  # a failure prints its example; keep nothing in the checkout
@given(
    low=st.floats(min_value=-1e6, max_value=1e6),
    span=st.floats(min_value=1e-3, max_value=1e6),
)
def test_ticks_are_nice_and_cover_any_ordinary_range(low, span):
    high = low + span
    root = parse(a_line_chart({"s": [(0, low), (1, high)]}))

    assert_nice_and_covering(ticks(root, "y"), low, high)


def test_equal_y_values_get_a_padded_range_around_them():
    root = parse(a_line_chart({"flat": [(1, 5.0), (2, 5.0), (3, 5.0)]}))
    y_ticks = ticks(root, "y")

    assert_nice_and_covering(y_ticks, 5.0, 5.0)
    assert y_ticks[0] < 5.0 < y_ticks[-1]
    assert len({y for _, y in points(root.find(f".//{SVG}polyline"))}) == 1


def test_a_single_point_gets_a_polyline_and_a_visible_dot():
    root = parse(a_line_chart({"only": [(3, 0.7)]}))
    series = one(root, "chart-series")

    assert len(points(series.find(f"{SVG}polyline"))) == 1
    dot = series.find(f"{SVG}circle")
    assert dot is not None
    assert (float(dot.get("cx")), float(dot.get("cy"))) == points(series.find(f"{SVG}polyline"))[0]
    assert_nice_and_covering(ticks(root, "x"), 3, 3)


def test_a_hostile_series_name_is_escaped_in_legend_and_tooltip():
    svg = a_line_chart({HOSTILE: [(1, 1.0), (2, 2.0)]})
    root = parse(svg)

    assert "<script" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert not [el for el in root.iter() if el.tag.endswith("script")]
    legend = one(root, "chart-legend-item")
    assert "".join(legend.itertext()) == HOSTILE
    assert one(root, "chart-series").find(f"{SVG}title").text == HOSTILE


def test_a_hostile_axis_label_is_escaped():
    svg = a_line_chart(x_label=HOSTILE, y_label="<img src=x onerror=alert(1)>")
    root = parse(svg)

    assert "<script" not in svg
    assert "<img" not in svg
    assert [el.text for el in by_class(root, "chart-axis-label")] == [
        HOSTILE,
        "<img src=x onerror=alert(1)>",
    ]


def test_the_legend_names_every_series_with_its_colour_class():
    root = parse(a_line_chart({"train": [(1, 1.0)], "validation": [(1, 2.0)], "test": []}))

    entries = by_class(root, "chart-legend-item")

    assert ["".join(e.itertext()) for e in entries] == ["train", "validation", "test"]
    assert [e.get("class").split()[1] for e in entries] == [
        "chart-series-0",
        "chart-series-1",
        "chart-series-2",
    ]


@pytest.mark.parametrize(
    "series",
    [{}, {"train": []}, {"train": [(NAN, 1.0), (1.0, INF)]}],
    ids=["no-series", "empty-series", "only-non-finite"],
)
def test_no_finite_data_renders_the_frame_and_no_data_yet(series):
    root = parse(a_line_chart(series))

    assert one(root, "chart-empty").text == "no data yet"
    assert one(root, "chart-frame") is not None
    assert root.find(f".//{SVG}polyline") is None
    assert by_class(root, "chart-tick") == []


# --- reliability diagram -----------------------------------------------------------------

BINS = [
    a_bin(0.0, 0.5, 0.3, 0.25, 10),
    a_bin(0.5, 0.75, 0.6, 0.5, 0),
    a_bin(0.75, 1.0, 0.9, 0.8, 30),
]


def test_reliability_draws_bars_only_for_bins_with_predictions():
    root = parse(reliability_diagram(BINS, title="Calibration"))

    bars = by_class(root, "chart-bar")

    assert [bar.get("data-count") for bar in bars] == ["10", "30"]
    assert len(by_class(root, "chart-marker")) == 2


def test_reliability_bars_span_their_bin_and_rise_to_their_accuracy():
    root = parse(reliability_diagram(BINS, title="Calibration"))
    frame = one(root, "chart-frame")
    left, top = float(frame.get("x")), float(frame.get("y"))
    size = float(frame.get("width"))
    bottom = top + float(frame.get("height"))

    low_bin, high_bin = by_class(root, "chart-bar")

    assert float(frame.get("height")) == size  # square, so the diagonal is at 45 degrees
    assert float(low_bin.get("height")) == pytest.approx(0.25 * size, abs=0.01)
    assert float(high_bin.get("height")) == pytest.approx(0.8 * size, abs=0.01)
    assert float(low_bin.get("y")) + float(low_bin.get("height")) == pytest.approx(bottom)
    assert float(low_bin.get("x")) == pytest.approx(left)
    assert float(low_bin.get("width")) == pytest.approx(0.5 * size, abs=0.01)
    assert float(high_bin.get("x")) == pytest.approx(left + 0.75 * size, abs=0.01)
    # The busier bin is drawn more solid.
    assert float(high_bin.get("fill-opacity")) > float(low_bin.get("fill-opacity"))


def test_reliability_markers_sit_at_mean_confidence_and_accuracy():
    root = parse(reliability_diagram(BINS, title="Calibration"))
    frame = one(root, "chart-frame")
    left, size = float(frame.get("x")), float(frame.get("width"))
    bottom = float(frame.get("y")) + size

    marker = by_class(root, "chart-marker")[1]

    assert float(marker.get("cx")) == pytest.approx(left + 0.9 * size, abs=0.01)
    assert float(marker.get("cy")) == pytest.approx(bottom - 0.8 * size, abs=0.01)


def test_reliability_has_a_dashed_diagonal_ticks_and_a_total_caption():
    root = parse(reliability_diagram(BINS, title="Calibration"))
    frame = one(root, "chart-frame")
    left, top, size = float(frame.get("x")), float(frame.get("y")), float(frame.get("width"))

    diagonal = one(root, "chart-diagonal")

    assert diagonal.get("stroke-dasharray")
    ends = [float(diagonal.get(a)) for a in ("x1", "y1", "x2", "y2")]
    assert ends == pytest.approx([left, top + size, left + size, top])
    assert [t.text for t in by_class(root, "chart-tick-x")] == ["0", "0.25", "0.5", "0.75", "1"]
    assert [t.text for t in by_class(root, "chart-tick-y")] == ["0", "0.25", "0.5", "0.75", "1"]
    assert one(root, "chart-caption").text == "n = 40 predictions"


def test_reliability_without_predictions_keeps_the_diagonal_and_says_no_data_yet():
    root = parse(reliability_diagram([a_bin(0, 0.5, 0.2, 0.0, 0)], title="Calibration"))

    assert by_class(root, "chart-bar") == []
    assert one(root, "chart-diagonal") is not None
    assert one(root, "chart-empty").text == "no data yet"
    assert one(root, "chart-caption").text == "n = 0 predictions"


# --- bar chart ---------------------------------------------------------------------------


def test_long_labels_are_cut_to_28_characters_with_an_ellipsis():
    long_label = "an extremely long channel label that needs cutting"
    root = parse(bar_chart([(long_label, 0.5), ("email", 0.9)], title="Accuracy"))

    cut, short = (el.text for el in by_class(root, "chart-label"))

    assert cut == long_label[:27] + "\u2026"
    assert len(cut) == 28
    assert short == "email"
    # The whole label stays available as the row's tooltip.
    assert by_class(root, "chart-row")[0].find(f"{SVG}title").text.startswith(long_label)


def test_labels_are_escaped_after_truncation_so_no_entity_is_split():
    svg = bar_chart([("&" * 40, 1.0), (HOSTILE, 0.5)], title="Exposure")
    root = parse(svg)

    ampersands, hostile = (el.text for el in by_class(root, "chart-label"))

    assert ampersands == "&" * 27 + "\u2026"
    assert hostile == HOSTILE
    assert "<script" not in svg
    assert not [el for el in root.iter() if el.tag.endswith("script")]


def test_values_are_formatted_right_of_the_bars():
    default = parse(bar_chart([("email", 0.9134), ("phone", 0.5)], title="Accuracy"))
    percent = parse(bar_chart([("email", 0.9134)], title="Accuracy", value_format="{:.1%}"))

    assert [el.text for el in by_class(default, "chart-value")] == ["0.91", "0.50"]
    assert one(percent, "chart-value").text == "91.3%"
    value, bar = one(percent, "chart-value"), one(percent, "chart-bar")
    assert float(value.get("x")) > float(bar.get("x")) + float(bar.get("width"))


def test_bar_lengths_are_proportional_and_max_value_sets_the_scale():
    auto = parse(bar_chart([("a", 0.8), ("b", 0.4)], title="t"))
    fixed = parse(bar_chart([("a", 0.8), ("b", 0.4)], title="t", max_value=1.6))

    a, b = (float(r.get("width")) for r in by_class(auto, "chart-bar"))
    fixed_a, fixed_b = (float(r.get("width")) for r in by_class(fixed, "chart-bar"))

    assert b == pytest.approx(a / 2, abs=0.01)
    assert fixed_a == pytest.approx(a / 2, abs=0.01)
    assert fixed_b == pytest.approx(a / 4, abs=0.01)


def test_bars_clamp_to_the_scale_and_non_finite_values_get_a_dash():
    root = parse(
        bar_chart([("a", 1.0), ("over", 1.5), ("under", -0.2), ("x", NAN)], title="t", max_value=1)
    )

    full, over, under, missing = (float(r.get("width")) for r in by_class(root, "chart-bar"))

    assert over == full > 0
    assert under == missing == 0
    assert [el.text for el in by_class(root, "chart-value")] == ["1.00", "1.50", "-0.20", "\u2013"]


def test_the_bar_chart_grows_with_its_rows():
    one_row = parse(bar_chart([("a", 1.0)], title="t", bar_height=18))
    three_rows = parse(bar_chart([("a", 1.0), ("b", 1.0), ("c", 1.0)], title="t", bar_height=18))

    assert float(three_rows.get("height")) - float(one_row.get("height")) >= 2 * 18


def test_an_empty_bar_chart_says_no_data_yet():
    root = parse(bar_chart([], title="Exposure per source"))

    assert one(root, "chart-empty").text == "no data yet"
    assert by_class(root, "chart-bar") == []
