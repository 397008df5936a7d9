"""The approval request's content: when a rollout is ready for approval, its report and this release's
numbers.

CodePipeline's manual approval carries text and one link fixed when the stack is deployed (``CustomData``,
``ExternalEntityLink``); nothing of a running release can be put into it. So the ``ready`` step writes the
report (HTML and Markdown, from the registry alone) to the stack's bucket, both under the experiment's own
prefix and under the service's stable "latest approval" prefix the approval action links to, and publishes the
numbers (the gate checklist metric by metric, the sample ratio, the stage timeline, the slices that moved)
with both links to the alert topic, which is also the approval's notification topic (docs/report.md).

Example
-------
>>> publish_approval_report("mangaassist-v42-1f1d41d6a7", registry=registry, store=store,  # doctest: +SKIP
...                         topic=topic)
{'report': 'https://s3.console.aws.amazon.com/s3/object/…', 'verdict': 'READY FOR APPROVAL', ...}
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from canarywise.data.executions import AlertTopic
from canarywise.data.registry import Registry
from canarywise.data.reports import ReportStore, experiment_report_prefix, latest_report_prefix
from canarywise.decision.models import SRM_FINDING
from canarywise.report import ReportData, render_report, summary_lines

logger = Logger(child=True)


def publish_approval_report(
    experiment_id: str, *, registry: Registry, store: ReportStore, topic: AlertTopic | None
) -> dict[str, Any]:
    """Write the experiment's report to `store` and publish its summary to `topic`; the message sent."""
    rendered = render_report(ReportData.read(registry, experiment_id))
    view = rendered.view
    own = store.put_report(
        experiment_report_prefix(experiment_id), html=rendered.html, markdown=rendered.markdown
    )
    latest = store.put_report(
        latest_report_prefix(view.service), html=rendered.html, markdown=rendered.markdown
    )
    message: dict[str, Any] = {
        "event": "ready_for_approval",
        "service": view.service,
        "experiment_id": experiment_id,
        "candidate": view.candidate,
        "verdict": view.banner.verdict,
        "report": own,
        "latest_approval_report": latest,
        "summary": summary_lines(view, own),
        "gates": [
            {
                "metric": r.metric,
                "test": r.test,
                "estimate": r.estimate,
                "bound": r.bound,
                "threshold": r.threshold,
                "pvalue": r.pvalue,
                "verdict": r.verdict,
                "passed": r.status == "pass",
            }
            for r in view.checklist
            if r.metric != SRM_FINDING
        ],
        "sample_ratio": (
            None
            if view.srm is None
            else {
                "pvalue": view.srm.pvalue,
                "threshold": view.srm.threshold,
                "offset": view.srm.offset,
                "n_control": view.srm.n_control,
                "n_canary": view.srm.n_canary,
            }
        ),
        "stages": [
            {
                "stage": s.number,
                "weights": f"{s.control}/{s.canary}",
                "hours": s.lasted_hours,
                "checks": s.checks,
                "last_decision": s.last_decision,
            }
            for s in view.stages
        ],
        "slices_moved": [f"{r.name}: {r.estimate} ({r.verdict})" for r in view.moved_slices],
    }
    if topic is not None:
        topic.publish(f"canarywise {view.service} {view.candidate}: ready for approval", message)
    logger.info("approval report written", extra={"experiment_id": experiment_id, "report": own})
    return message
