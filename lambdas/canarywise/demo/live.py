"""What a person watches while the demo runs: a rich live panel in a terminal, plain lines otherwise.

The panel shows the stage and the listener rule's forward in force, the sessions per slot, each metric's
estimate and confidence sequence with its verdict, the decision with its reason, and the latest events (stage
changes, alarms, the rollback). Piped output (CI, ``make demo | tee``) gets one line per event and a status
line per simulated hour instead.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from canarywise.decision.models import MetricFinding
from canarywise.demo.local_run import RunResult, TickView, describe_forward
from canarywise.demo.scenarios import Scenario
from canarywise.local.deployment import Deployment
from canarywise.report.data import format_value
from canarywise.spec import RolloutSpec

_SRM = "(sample ratio)"
_DECISION_STYLE = {
    "ROLLBACK": "bold white on red",
    "HOLD": "bold black on yellow",
    "CONTINUE": "bold",
    "ADVANCE": "bold green",
    "READY_FOR_APPROVAL": "bold white on green",
    "PROMOTE": "bold white on green",
    "INCONCLUSIVE": "bold magenta",
}


def metric_rows(spec: RolloutSpec, findings: list[MetricFinding]) -> list[list[str]]:
    """One row per metric: sessions per arm, estimate, the confidence sequence the decision uses, verdicts.

    A canary safety metric has a harm test (lower bound) and a non-inferiority test (upper bound): they are
    shown as one interval. Slices appear only when one of them is harmed.
    """
    rows: dict[tuple[str, str | None], dict[str, Any]] = {}
    for finding in findings:
        if finding.slice is not None and finding.verdict.value != "harm":
            continue
        key = (finding.metric, finding.slice)
        row = rows.setdefault(
            key,
            {
                "n": (finding.n_control, finding.n_canary),
                "estimate": None,
                "low": None,
                "high": None,
                "v": [],
            },
        )
        if "hard limit" in finding.method:
            observed = format_value(spec, finding.metric, finding.estimate, signed=False)
            row["v"].append(f"{finding.verdict.value.replace('_', ' ')} ({observed})")
            continue
        if row["estimate"] is None:
            row["estimate"] = finding.estimate
        if finding.ci_low is not None:
            row["low"] = finding.ci_low
        if finding.ci_high is not None:
            row["high"] = finding.ci_high
        row["v"].append(finding.verdict.value.replace("_", " "))
    out = []
    for (metric, slice_), row in rows.items():
        name = metric + (f" [{slice_}]" if slice_ else "")
        if metric == _SRM:
            verdicts = ", ".join(row["v"])
            out.append(
                [
                    name,
                    f"{row['n'][0]:,}",
                    f"{row['n'][1]:,}",
                    format_value(spec, metric, row["estimate"]),
                    "",
                    verdicts,
                ]
            )
            continue
        interval = ""
        if row["low"] is not None or row["high"] is not None:
            interval = (
                f"[{format_value(spec, metric, row['low'])}, {format_value(spec, metric, row['high'])}]"
            )
        estimate = format_value(spec, metric, row["estimate"])
        verdicts = " · ".join(dict.fromkeys(row["v"]))
        out.append([name, f"{row['n'][0]:,}", f"{row['n'][1]:,}", estimate, interval, verdicts])
    return out


def _findings(view: TickView) -> list[MetricFinding]:
    if view.check is None:
        return []
    return [MetricFinding.from_dict(f) for f in view.check.details.get("findings", [])]


def _sessions(view: TickView) -> str:
    """Sessions per slot since the rollout started, the live slot first."""
    slots = sorted(view.sessions, key=lambda slot: slot != view.live)
    return " / ".join(f"{slot} {view.sessions[slot]:,}" for slot in slots)


class LiveProgress:
    """The rich live panel (for a terminal)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.events: deque[str] = deque(maxlen=6)
        self.live: Live | None = None
        self.title = ""

    def started(self, scenario: Scenario, deployment: Deployment, experiment_id: str) -> None:
        self.title = f"canarywise demo · {scenario.name}: {scenario.title}"
        self.events.clear()
        # redirect_stdout=False: the handlers run on moto's threads and print their EMF metric lines to
        # sys.stdout, which local mode routes into each invocation's log (local/lambda_runtime.py); rich's
        # default would put its own proxy in front of that router and print the lines above the panel.
        self.live = Live(
            Panel(Text("starting…"), title=self.title),
            console=self.console,
            auto_refresh=False,
            redirect_stdout=False,
        )
        self.live.start()

    def event(self, hours: float, text: str) -> None:
        self.events.append(f"{hours:6.2f} h  {text}")

    def ticked(self, view: TickView) -> None:
        if self.live is None:
            return
        self.live.update(self._render(view), refresh=True)

    def _render(self, view: TickView) -> Panel:
        stage = view.stages[-1] if view.stages else None
        header = Text()
        header.append(f"{view.now:%Y-%m-%d %H:%M} UTC  (+{view.hours:.2f} simulated h)   ", style="dim")
        if stage is not None:
            header.append(f"stage {stage.stage_index + 1}/{len(view.spec.stages)}  ", style="bold")
        header.append(f"forward {describe_forward(view.forward)} (live {view.live})   ")
        header.append(f"sessions {_sessions(view)}")
        table = Table(expand=True, show_edge=False, pad_edge=False)
        for column, justify in (
            ("metric", "left"), ("n control", "right"), ("n canary", "right"), ("estimate", "right"),
            ("confidence sequence", "right"), ("verdict", "left"),
        ):  # fmt: skip
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for row in metric_rows(view.spec, _findings(view)):
            style = (
                "red"
                if row[-1].split(" · ")[0] == "harm" or "breached" in row[-1] or row[-1] == "srm"
                else None
            )
            table.add_row(*row, style=style)
        decision = Text()
        if view.check is not None:
            decision.append(
                f" {view.check.decision} ", style=_DECISION_STYLE.get(view.check.decision, "bold")
            )
            decision.append(f"  {view.check.reason}")
        events = Text("\n".join(self.events), style="cyan")
        return Panel(Group(header, table, decision, Text(""), events), title=self.title, border_style="blue")

    def finished(self, result: RunResult) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        print_result(self.console, result)


class LineProgress:
    """One line per event, and a status line per simulated hour (for pipes and CI logs)."""

    def __init__(self, console: Console | None = None, *, every_hours: float = 1.0) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.every_hours = every_hours
        self._next = 0.0
        self.name = ""

    def started(self, scenario: Scenario, deployment: Deployment, experiment_id: str) -> None:
        self.name = scenario.name
        self._next = self.every_hours
        self.console.print(f"[bold]canarywise demo · {scenario.name}[/bold]: {scenario.title}")

    def event(self, hours: float, text: str) -> None:
        self.console.print(f"  [{hours:6.2f} h] {text}", markup=False, soft_wrap=True)

    def ticked(self, view: TickView) -> None:
        if view.hours + 1e-9 < self._next:
            return
        self._next += self.every_hours
        headline = next(
            (r for r in metric_rows(view.spec, _findings(view)) if r[0] == view.scenario.headline_metric),
            None,
        )
        effect = f" · {headline[0]} {headline[3]} {headline[4]}" if headline else ""
        decision = f" · {view.check.decision}: {view.check.reason}" if view.check else ""
        self.console.print(
            f"  [{view.hours:6.2f} h] forward {describe_forward(view.forward)} · "
            f"sessions {_sessions(view)}{effect}{decision}",
            markup=False,
            soft_wrap=True,
        )

    def finished(self, result: RunResult) -> None:
        print_result(self.console, result)


def print_result(console: Console, result: RunResult) -> None:
    """The end of a run: outcome, decision time, report."""
    ok = result.as_expected
    style = "green" if ok else "red"
    lines = Text()
    lines.append(f"{result.scenario}: ", style="bold")
    lines.append(f"{result.outcome}", style=f"bold {style}")
    lines.append(f"  (expected {result.expected}; latest decision {result.decision})\n")
    when = f"{result.decision_hours:.1f} simulated hours" if result.decision_hours is not None else "—"
    lines.append(f"decision after {when}; {result.ticks} five-minute checks in {result.wall_seconds:.1f} s\n")
    if result.reason:
        lines.append(f"why: {result.reason}\n")
    if result.report_dir is not None:
        lines.append(f"report: {result.report_dir / 'report.md'} (and report.html, effect.png)")
    console.print(Panel(lines, border_style=style, title="outcome"))
