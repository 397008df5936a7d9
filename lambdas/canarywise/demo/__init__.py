"""The local demo: simulated traffic for a whole rollout against the embedded AWS of :mod:`canarywise.local`.

- :mod:`canarywise.demo.traffic`: sessions over the day, sticky users, the split the ALB rule sets.
- :mod:`canarywise.demo.scenarios`: how the control and the candidate behave in each scenario.
- :mod:`canarywise.demo.simulator`: one five-minute tick of per-variant aggregates, as the service emits them.
- :mod:`canarywise.demo.runner`: provisions, starts the real state machine and plays the ticks.
- :mod:`canarywise.demo.report`: the Markdown/HTML report and its plot, from the registry.
"""

from __future__ import annotations
