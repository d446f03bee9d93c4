"""Charts and the single-file HTML page (matplotlib comes with the test extra)."""

from __future__ import annotations

import random
import struct

from celery_scaler.analysis.charts import report_chart, simulation_chart
from celery_scaler.analysis.documents import html_page, markdown, report_document
from celery_scaler.analysis.replay import replay
from celery_scaler.analysis.simulate import AlarmPathSettings, SimSettings, simulate
from celery_scaler.analysis.workload import Pattern, pattern
from tests.helpers import design_pool, history


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_report_chart_and_page() -> None:
    values: list[float | None] = [5, 25, 25, None, None, 1, 1, 1]
    report = replay(design_pool(), history(values, period=60, real=[2.0] * 8))
    chart = report_chart(report)
    assert png_size(chart) == (1100, 600)
    page = html_page(report_document(report), [chart])
    assert page.count("<img") == 1
    assert "Missing data (the replay holds)" in page
    assert "<script" not in page
    assert "## Scaling actions the controller would have taken" in markdown(report_document(report))


def test_simulation_chart() -> None:
    load = pattern(Pattern.BURST, 1.0, 3 * 3600, random.Random(0))
    result = simulate(design_pool(), load, SimSettings(interval=15), alarm_path=AlarmPathSettings())
    width, height = png_size(simulation_chart(result))
    assert (width, height) == (1100, 750)
