"""A rollout under a spec, played thousands of times: the engine's rule vectorised over simulated rollouts.

``canarywise plan`` runs it to say how long a healthy candidate takes to reach approval and how soon a harmful
one is rolled back; ``make bench`` (``bench/shipped.py``) runs the same code on the shipped spec and replays
its decisions through ``canarywise.decision.engine.decide`` to show they agree look for look.

- `canarywise.simulation.traffic`: sessions per check interval around a diurnal curve, the stage ladder.
- `canarywise.simulation.arrays`: the engine's statistics elementwise (variances, mixture p-values, BH,
  the sample-ratio check, the hard-limit backstop).
- `canarywise.simulation.rollout`: the rollouts themselves, the ladder moved by the engine's decisions.

Numbers in, arrays out: no AWS, no files.
"""
