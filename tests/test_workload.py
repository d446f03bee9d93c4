"""Workloads for the simulator: trace files and named patterns."""

from __future__ import annotations

import random

import pytest

from celery_scaler.analysis.replay import ReportError
from celery_scaler.analysis.workload import Pattern, make_workload, parse_trace, pattern


def test_trace_rows_become_segments() -> None:
    text = "timestamp,count,mean duration\n2024-05-01T00:00:00Z,10\n2024-05-01T00:01:00Z,0,30s\n"
    text += "# a comment\n2024-05-01T00:03:00,4,2.5\n"
    load = parse_trace(text, "t.csv")
    start = 1_714_521_600.0
    assert [(s.start - start, s.end - start, s.tasks, s.mean_duration) for s in load.segments] == [
        (0, 60, 10, None),
        (60, 180, 0, 30.0),
        (180, 300, 4, 2.5),  # the last row lasts as long as the one before it
    ]


def test_trace_in_seconds() -> None:
    load = parse_trace("0,5\n15,6\n", "t.csv")
    assert [(s.start, s.end, s.tasks) for s in load.segments] == [(0, 15, 5), (15, 30, 6)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0,5\nnoon,3\n", "t.csv line 2: 'noon' is not a timestamp"),
        ("2024-02-30T00:00:00Z,5\n", "t.csv line 1: '2024-02-30T00:00:00Z' is not a timestamp"),
        ("0,5\n0,3\n", "t.csv line 2: timestamps must increase"),
        ("0,5\n10,2.5\n", "t.csv line 2: count '2.5' is not a whole number"),
        ("0,-1\n", "count '-1'"),
        ("0\n", "t.csv line 1: expected `timestamp, count"),
        ("0,1,2,3\n", "expected `timestamp, count"),
        ("0,1,fast\n", "t.csv line 1: mean duration: expected a duration"),
        ("0,1,0s\n", "mean duration must be above 0s"),
        ("timestamp,count\n", "t.csv: no rows"),
        ("", "t.csv: no rows"),
    ],
)
def test_bad_traces_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ReportError, match=message.replace("[", r"\[").replace("`", "`")):
        parse_trace(text, "t.csv")


@pytest.mark.parametrize("name", list(Pattern))
def test_patterns_cover_the_duration_around_the_rate(name: Pattern) -> None:
    load = pattern(name, 2.0, 24 * 3600, random.Random(1))
    assert load.start == 0
    assert load.end == 24 * 3600
    expected = sum(segment.tasks for segment in load.segments)
    assert expected == pytest.approx(2.0 * 24 * 3600, rel=0.25)
    ends = [(segment.start, segment.end) for segment in load.segments]
    assert ends == sorted(ends)


def test_patterns_are_seeded() -> None:
    assert pattern(Pattern.SPIKY, 1.0, 6 * 3600, random.Random(5)) == pattern(
        Pattern.SPIKY, 1.0, 6 * 3600, random.Random(5)
    )


def test_unknown_pattern_and_bad_rate() -> None:
    with pytest.raises(ReportError, match="not one of steady, burst, diurnal, spiky"):
        make_workload(None, "", "wavy", 1.0, 3600, 0)
    with pytest.raises(ReportError, match="--rate"):
        make_workload(None, "", "steady", 0, 3600, 0)
