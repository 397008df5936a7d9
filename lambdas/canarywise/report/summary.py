"""The approval request's text: the verdict, each gate's bound against its threshold, the sample ratio, the
stages, the slices that moved and the report's link, from a :class:`~canarywise.report.view.ReportView`.

Example
-------
>>> print("\n".join(summary_lines(build_view(data), link)))  # doctest: +SKIP
canarywise mangaassist v42: READY FOR APPROVAL. Every stage's gate was met after 76.2 hours; ...
"""

from __future__ import annotations

from canarywise.decision.models import SRM_FINDING
from canarywise.report.view import ReportView, StageRow


def summary_lines(view: ReportView, link: str | None) -> list[str]:
    """The approval request's text: verdict, each gate's bound vs its threshold, SRM, stages, slices, link."""
    lines = [
        f"canarywise {view.service} {view.candidate}: {view.banner.verdict}. {view.banner.why}",
        "",
        "Gates:",
    ]
    lines += [f"  {row.sentence()}" for row in view.checklist if row.metric != SRM_FINDING]
    if view.srm is not None:
        lines.append(
            f"Sample ratio: p {view.srm.pvalue} (mismatch below {view.srm.threshold}); canary share "
            f"{view.srm.offset} off the weights; n {view.srm.n_control:,} / {view.srm.n_canary:,}"
        )
    lines.append("Stages: " + " → ".join(_stage_text(s) for s in view.stages))
    moved = view.moved_slices
    lines.append(
        "Slices that moved: " + (", ".join(f"{r.name} {r.estimate} ({r.verdict})" for r in moved) or "none")
    )
    if link:
        lines += ["", f"Report: {link}"]
    return lines


def _stage_text(stage: StageRow) -> str:
    lasted = f"{stage.lasted_hours:.1f} h" if stage.lasted_hours is not None else "—"
    return f"{stage.canary}% {lasted} ({stage.checks} checks, {stage.last_decision})"
