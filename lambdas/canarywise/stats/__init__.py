"""Pure statistics: numbers in, small named result objects out. No boto3, no environment, no I/O.

Every function checks its inputs first (the message names the argument and shows the value), takes
``alternative`` in {'two-sided', 'greater', 'less'} where a direction applies, and computes p-values from
survival functions so a p of 1e-16 stays 1e-16. Differences are always treatment − control.

The submodules are imported lazily: a Lambda that only needs the anytime-valid tests does not pay for
``scipy.stats`` at cold start.

Modules
-------
proportions       two-proportion z (pooled), Newcombe/Wald intervals, relative lift, Fisher exact, the
                  Farrington-Manning restricted rates and the variance a test at a null uses
means             ``SummaryStats`` (n, sum, sum of squares, optionally shifted) and Welch's t from them
srm               sample-ratio mismatch: chi-square, plain and stage-aware; anytime-valid, stage-aware
drift             the drift monitor: rates, chi-square of category mixes, KS (raw and binned), alert rule
paired            McNemar (exact, chi-square), the Agresti-Min interval, paired t: offline, looked at once
paired_sequential shadow mode's anytime-valid paired tests: sequential McNemar, the paired mSPRT
multiple          BH, BY, Holm, Bonferroni
planning          sample size, MDE, stage durations
sequential        anytime-valid mSPRT p-values and confidence sequences
group_sequential  Lan-DeMets alpha spending boundaries
bandit            Thompson-sampling allocation
"""

from __future__ import annotations

from canarywise.stats._checks import StatsInputError

__all__ = ["StatsInputError"]
