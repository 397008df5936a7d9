"""The experiment registry: one DynamoDB table, the only code that reads or writes it.

Layout (keys ``pk``/``sk``, GSIs ``running`` and ``concluded``, TTL ``expires_at``):

=========================  ==========================================  ======================================
pk                         sk                                          what
=========================  ==========================================  ======================================
``SERVICE#<service>``      ``STATE``                                   the service's traffic state: live and
                                                                       idle slot, forward weights, phase,
                                                                       version (the fencing token)
``EXP#<id>``               ``META``                                    the experiment: spec (JSON), status,
                                                                       slots, latest check; ``running_pk``
                                                                       while it runs, ``concluded_pk`` and
                                                                       ``concluded_at`` once it ended; the
                                                                       slice acknowledgements (JSON list)
``EXP#<id>``               ``STAGE#<index:03d>``                       a stage's start and the weights
``EXP#<id>``               ``FROZEN#<index:03d>``                      a closed stage's aggregates (written
                                                                       once; later checks read them)
``EXP#<id>``               ``CHECK#<checked_at>``                      one significance check (TTL)
``EXP#<id>``               ``ROLLBACK``                                the rollback, written exactly once
``SERVICE#<service>``      ``ROLLBACK#<at>#<experiment or source>``    rollback history (anti-flapping)
``SERVICE#<service>``      ``ROLLBACK_FAILED#<at>``                    a rollback that could not set weights
``SERVICE#<service>``      ``MONITOR#<window end>``                    a drift monitor look (TTL; `drift`)
``SERVICE#<service>``      ``DRIFT#<window end>#<watch>``              a drift finding with its numbers
=========================  ==========================================  ======================================

The service's state and each experiment's status move only through `Registry.transition`, one conditional
transaction per row of `canarywise.lifecycle.table.TRANSITIONS`. The class is split by what it keeps:
`experiments`, `checks`, `rollbacks`, `service` (the transitions), `drift` (the drift monitor's looks and
findings), `_table` (DynamoDB plumbing).

Example
-------
>>> registry = Registry("canarywise-registry")  # doctest: +SKIP
>>> registry.service_state("mangaassist").live  # doctest: +SKIP
'blue'
"""

from __future__ import annotations

from canarywise.data.registry._table import ExperimentNotFoundError, RegistryError
from canarywise.data.registry.acknowledgements import AcknowledgementRefusedError, AcknowledgementsMixin
from canarywise.data.registry.checks import CHECK_TTL, ChecksMixin
from canarywise.data.registry.drift import DriftMixin, DriftRecord, MonitorLook, WatchResult
from canarywise.data.registry.experiments import FDR_WINDOW, experiment_id_for
from canarywise.data.registry.rollbacks import ANTI_FLAPPING_WINDOW
from canarywise.data.registry.service import ServiceMixin
from canarywise.data.registry.shadow import ShadowMixin
from canarywise.lifecycle.state import TransitionRefusedError


class Registry(ServiceMixin, ChecksMixin, DriftMixin, ShadowMixin, AcknowledgementsMixin):
    """Experiments, the service's traffic state, stages, checks, rollbacks, drift, shadow phases, slice
    acknowledgements, and the registry-wide BH.

    Constructed as `canarywise.data.registry._table._Table` (``table_name``, ``boto3_client``, ``sleep``).
    """


__all__ = [
    "ANTI_FLAPPING_WINDOW",
    "CHECK_TTL",
    "FDR_WINDOW",
    "AcknowledgementRefusedError",
    "DriftRecord",
    "ExperimentNotFoundError",
    "MonitorLook",
    "Registry",
    "RegistryError",
    "TransitionRefusedError",
    "WatchResult",
    "experiment_id_for",
]
