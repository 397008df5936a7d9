"""The stack's report store: approval reports as objects in the release bucket, and a link a person can open.

Each report is written twice: under ``reports/<experiment id>/`` (kept: the record of what was approved) and
under ``reports/<service>/latest-approval/`` (overwritten by every release), the stable key the pipeline's
manual approval links to, since its ``ExternalEntityLink`` is fixed when the stack is deployed.

Example
-------
>>> store = ReportStore("canarywise-mangaassist-releases")  # doctest: +SKIP
>>> store.put_report("reports/mangaassist-v42-1f1d41d6a7/", html="<!doctype html>…",  # doctest: +SKIP
...                  markdown="# …")
'https://s3.console.aws.amazon.com/s3/object/canarywise-mangaassist-releases?region=us-east-1&prefix=…'
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from canarywise.data._aws import client

REPORTS_PREFIX = "reports/"
HTML_NAME, MARKDOWN_NAME = "report.html", "report.md"


def experiment_report_prefix(experiment_id: str) -> str:
    return f"{REPORTS_PREFIX}{experiment_id}/"


def latest_report_prefix(service: str) -> str:
    """The stable per-service key prefix the approval action links to (``stacks/approval.py``)."""
    return f"{REPORTS_PREFIX}{service}/latest-approval/"


def console_link(bucket: str, key: str, region: str) -> str:
    """The S3 console's page of one object (a signed-in person with read access can open or download it)."""
    return f"https://s3.console.aws.amazon.com/s3/object/{bucket}?region={region}&prefix={quote(key)}"


class ReportStore:
    """Report objects in one bucket (``REPORT_BUCKET``); the Lambda may only put under ``reports/``."""

    def __init__(self, bucket: str, *, boto3_client: Any = None) -> None:
        self.bucket = bucket
        self._client = boto3_client if boto3_client is not None else client("s3")

    def put_report(self, prefix: str, *, html: str, markdown: str) -> str:
        """Put ``report.html`` and ``report.md`` under `prefix`; the HTML's link."""
        for name, body, content_type in (
            (HTML_NAME, html, "text/html; charset=utf-8"),
            (MARKDOWN_NAME, markdown, "text/markdown; charset=utf-8"),
        ):
            self._client.put_object(
                Bucket=self.bucket, Key=prefix + name, Body=body.encode(), ContentType=content_type
            )
        return self.link(prefix + HTML_NAME)

    def link(self, key: str) -> str:
        """The object's S3 console page; on a local endpoint (moto on 127.0.0.1) the object's own URL."""
        endpoint = str(self._client.meta.endpoint_url)
        if urlsplit(endpoint).hostname in {"127.0.0.1", "localhost"}:
            return f"{endpoint.rstrip('/')}/{self.bucket}/{quote(key)}"
        return console_link(self.bucket, key, str(self._client.meta.region_name))
