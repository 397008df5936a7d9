"""The decision engine: rollout spec + stage history + per-variant aggregates + now -> a decision.

Pure code (no boto3, no environment, no I/O). Import from the submodules: `canarywise.decision.models` for the
input and output models, `canarywise.decision.engine` for `decide`; `canarywise.decision.shadow` for the
shadow gate (`decide_shadow`) and `canarywise.decision.offline` for the golden-set comparison.
"""
