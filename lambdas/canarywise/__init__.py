"""canarywise: statistically sound canary rollouts and A/B tests for ML models on AWS.

Layout (the architecture, by folder):

- ``canarywise.stats``     pure statistics: numbers in, result objects out (no boto3, no env, no I/O)
- ``canarywise.spec``      the rollout spec (pydantic), shared by ``cdk synth`` and the runtime
- ``canarywise.decision``  the decision engine: spec + stage history + aggregates + now -> decision
- ``canarywise.data``      data access: the only code that talks to AWS (boto3)
- ``canarywise.handlers``  thin Lambda handlers
- ``canarywise.cli``       the ``canarywise`` command line
"""

from __future__ import annotations

__version__ = "0.1.0"
