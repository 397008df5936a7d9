"""The experiment report: a verdict, the gate checklist, every decisive metric over time, slices, the sample
ratio, the stage timeline and the events, as self-contained HTML and as Markdown, from the registry alone.

- :mod:`canarywise.report.data`: what a report is made of, read once from the registry.
- :mod:`canarywise.report.view`: the content as plain values (no HTML).
- :mod:`canarywise.report.summary`: the approval request's text.
- :mod:`canarywise.report.svg`: chart geometry for the inline SVG.
- :mod:`canarywise.report.render`: the Jinja2 templates (``templates/``) rendered to HTML and Markdown.
- :mod:`canarywise.report.plot`: the headline metric's PNG (matplotlib; CLI and demo only).

One report for demo and real rollouts; only a demo run's report says "simulated".
"""

from __future__ import annotations

from canarywise.report.data import ReportData, decision_point, format_value, headline_metric, hold_started
from canarywise.report.render import RenderedReport, render_report, write_report
from canarywise.report.summary import summary_lines
from canarywise.report.view import ReportView, build_view

__all__ = [
    "RenderedReport",
    "ReportData",
    "ReportView",
    "build_view",
    "decision_point",
    "format_value",
    "headline_metric",
    "hold_started",
    "render_report",
    "summary_lines",
    "write_report",
]
