"""``make bench``: the decision-quality and cost benchmark of canarywise.

Run ``python -m bench.run --help``. The modules:

- ``bench.scenarios``: the traffic schedule (the spec's stage ladder over a 7-day horizon of 5-minute looks)
  and the seeded, numpy-vectorised simulation of per-variant 5-minute aggregates.
- ``bench.methods``: the methods canarywise is compared with (naive z at every look, fixed horizon,
  Lan-DeMets O'Brien-Fleming, mSPRT at GrowthBook's default tuning, Wald's SPRT told the truth).
- ``bench.engine``: drives canarywise's own decision engine on the same streams.
- ``bench.decision_quality``: the Monte Carlo and its summary numbers.
- ``bench.fullspec`` / ``bench.shipped``: the shipped spec with every metric, its ladder moved by the
  engine's decisions (vectorised, replayed through ``decide`` look by look).
- ``bench.hard_limit`` / ``bench.alarm``: the hard-limit backstop and the CloudWatch 5xx alarm, the rule
  before and the rule now, on healthy and broken canaries.
- ``bench.cost``: CPU time of a significance-check tick, cold-start imports, bundle size, AWS cost.
- ``bench.report`` / ``bench.run``: the tables, printed and written to ``docs/benchmarks.md``.
"""
