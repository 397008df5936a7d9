"""``make bench``: the decision-quality and cost benchmark of canarywise.

Run ``python -m bench.run --help``. The modules:

- ``bench.scenarios``: the traffic schedule (the spec's stage ladder over a 7-day horizon of 5-minute looks)
  and the seeded, numpy-vectorised simulation of per-variant 5-minute aggregates.
- ``bench.methods``: the methods canarywise is compared with (naive z at every look, fixed horizon,
  Lan-DeMets O'Brien-Fleming, mSPRT at GrowthBook's default tuning, Wald's SPRT told the truth).
- ``bench.engine``: drives canarywise's own decision engine on the same streams.
- ``bench.decision_quality``: the Monte Carlo and its summary numbers.
- ``bench.cost``: CPU time of a significance-check tick, cold-start imports, bundle size, AWS cost.
- ``bench.report`` / ``bench.run``: the tables, printed and written to ``docs/benchmarks.md``.
"""
