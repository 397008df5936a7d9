"""Integration-test fixtures (moto `mock_aws`, in-process); the helpers live in ``aws_kit.py``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Powertools reads these when a handler module is imported (at collection, before any fixture runs); in Lambda
# the stack sets them. Tracing is off: there is no X-Ray daemon here.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "canarywise")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Canarywise")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

# pytest runs with --import-mode=importlib: put this folder on sys.path so tests can `import aws_kit`.
sys.path.insert(0, str(Path(__file__).parent))

from aws_kit import (
    _aws_environment,
    aws,
    context,
    registry_table,
    serialized_dynamodb_writes,
    spec_data,
)

__all__ = ["_aws_environment", "aws", "context", "registry_table", "serialized_dynamodb_writes", "spec_data"]
