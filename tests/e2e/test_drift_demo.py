"""End to end: ``canarywise demo --scenario drift`` on moto in server mode, with twelve stationary hours.

The stack of ``demo/specs/mangaassist-monitor.yaml`` provisioned locally, four weeks of baseline traffic,
then twelve stationary hours (the CLI plays a week; the false-alert rate over months is bench/monitor.py's)
and the seed's campaign: recommendation share 32% -> 21%, thumbs-down 6% -> 9%. No alarm and no finding in
the stationary hours; the drift alarm goes to ALARM after the campaign starts, with drift records carrying
the numbers and the findings on the alert topic. The statistics behind the numbers are checked against scipy
in tests/integration/test_monitor.py.
"""

from __future__ import annotations

import re

import pytest

from canarywise.demo.drift import run_drift_demo

pytestmark = pytest.mark.slow


def test_stationary_hours_raise_nothing_and_the_campaign_pages_with_the_numbers() -> None:
    result = run_drift_demo(seed=7, stationary_hours=12, campaign_hours=4, say=lambda _line: None)

    assert result.stationary_alarms == 0
    assert result.stationary_findings == []
    assert result.alarm_hours is not None
    assert result.alarm_hours <= 4
    assert result.as_expected
    by_watch = {f["watch"]: f["summary"] for f in result.findings}
    assert {"intent_mix", "thumbs_down_rate"} <= set(by_watch)
    share = re.search(r"recommendation share [\d.]+% -> ([\d.]+)%", by_watch["intent_mix"])
    assert share is not None
    assert 18 < float(share.group(1)) < 24
    rate = re.search(r"thumbs_down_rate [\d.]+% -> ([\d.]+)%", by_watch["thumbs_down_rate"])
    assert rate is not None
    assert 7.5 < float(rate.group(1)) < 10.5
    assert "canarywise mangaassist: drift in intent_mix" in result.messages
    assert any(m.startswith('ALARM: "canarywise-drift-mangaassist"') for m in result.messages)
