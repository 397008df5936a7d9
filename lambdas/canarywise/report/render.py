"""Render the report from its Jinja2 templates (package data in ``canarywise/report/templates``).

:func:`render_report` returns the HTML and the Markdown as strings (the stage gate stores them in S3);
:func:`write_report` writes them into a folder, with the headline metric's PNG plot when matplotlib is there
(the CLI and the demo; the Lambda bundle has no matplotlib and needs none: the HTML draws its charts in SVG).

Example
-------
>>> rendered = render_report(ReportData.read(registry, experiment_id))  # doctest: +SKIP
>>> rendered.html.startswith("<!doctype html>")  # doctest: +SKIP
True
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from canarywise.data.registry import Registry
from canarywise.report.data import ReportData, headline_metric
from canarywise.report.view import ReportView, build_view, stage_share

if TYPE_CHECKING:
    import jinja2

    from canarywise.demo.local_run import RunResult
    from canarywise.demo.scenarios import Scenario

PLOT_NAME = "effect.png"


@dataclass(frozen=True)
class RenderedReport:
    view: ReportView
    html: str
    markdown: str


def _markdown_cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


@cache
def _environment() -> jinja2.Environment:
    import jinja2  # only the report needs it: the significance check never pays for the import

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("canarywise.report", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        keep_trailing_newline=True,
    )
    env.filters["md"] = _markdown_cell
    return env


def render_view(view: ReportView) -> RenderedReport:
    env = _environment()
    bars = list(zip(view.stages, stage_share(view.stages), strict=True))
    html = env.get_template("report.html.j2").render(v=view, stage_bars=bars)
    markdown = env.get_template("report.md.j2").render(v=view)
    return RenderedReport(view=view, html=html, markdown=markdown)


def render_report(data: ReportData, *, story: str = "", result: RunResult | None = None) -> RenderedReport:
    """The report of `data` as HTML (self-contained: inline CSS and SVG) and Markdown.

    Parameters
    ----------
    data
        The experiment as read from the registry.
    story
        A paragraph shown under the title (the demo's scenario).
    result
        A demo run: hours are labelled simulated and the run's own events are listed.
    """
    return render_view(build_view(data, story=story, result=result))


def write_report(
    registry: Registry,
    experiment_id: str,
    out_dir: Path,
    *,
    scenario: Scenario | None = None,
    result: RunResult | None = None,
    plot: bool = True,
) -> Path:
    """Write ``report.html``, ``report.md`` and (with `plot` and matplotlib) ``effect.png`` into `out_dir`."""
    data = ReportData.read(registry, experiment_id)
    story = f"{scenario.title}. {scenario.story}" if scenario is not None else ""
    view = build_view(data, story=story, result=result)
    out_dir.mkdir(parents=True, exist_ok=True)
    if plot and data.checks:
        try:
            from canarywise.report.plot import plot_effect
        except ImportError:  # matplotlib is in the CLI's extras only
            pass
        else:
            metric = scenario.headline_metric if scenario is not None else headline_metric(data.spec)
            plot_effect(data, metric, out_dir / PLOT_NAME, result)
            view = replace(view, plot=PLOT_NAME)
    rendered = render_view(view)
    (out_dir / "report.html").write_text(rendered.html)
    (out_dir / "report.md").write_text(rendered.markdown)
    return out_dir
