"""The demo's pure helpers: sparklines and the percentile its summary reports."""

from __future__ import annotations

from celery_scaler.analysis.simulate import percentile
from celery_scaler.local.demo import sparkline


def test_sparkline_scales_to_the_top_and_marks_gaps() -> None:
    assert sparkline([0, 4, 8, None], top=8) == " ▄█·"
    assert sparkline([3, 30], top=8) == "▃█", "values above the top are clipped"
    assert sparkline([0, 0], top=0) == "  "


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.95) == 7.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0, "a value that was observed, never interpolated"
    assert percentile(values, 0.95) == 95.0
    assert percentile([1.0, 2.0, 3.0], 0.95) == 3.0
