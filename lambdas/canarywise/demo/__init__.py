"""The local demo: simulated traffic for a whole rollout against the embedded AWS of :mod:`canarywise.local`.

- :mod:`canarywise.demo.traffic`: sessions over the day, sticky users, the split the ALB rule's forward sets.
- :mod:`canarywise.demo.scenarios`: how the current model and the candidate behave in each scenario.
- :mod:`canarywise.demo.simulator`: one five-minute tick of per-slot aggregates, as the service emits them.
- :mod:`canarywise.demo.local_run`: one local AWS with the stack; starts a release, plays a tick.
- :mod:`canarywise.demo.runner`: a scenario end to end: provisions, starts the real state machine, plays.
- :mod:`canarywise.demo.release_train`: three releases in a row on one local AWS.
"""

from __future__ import annotations
