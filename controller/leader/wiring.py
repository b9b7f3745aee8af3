"""Building a controller's `Leadership`: elected among replicas, or a sole leader.

    leadership, election = build(core)

`[cluster] enabled = false` (the default, SQLite, the demo): `SoleLeader`, no component.
Enabled (PostgreSQL, checked by the configuration): an `Election` on its own small pool, to be
started before every leader-only part and stopped after them (`election` is that component).
"""

from __future__ import annotations

from controller.config import CLUSTER_MARGIN_S
from controller.leader import Leadership, SoleLeader
from controller.leader.election import Election, election_engine
from controller.leader.lease import Timing
from controller.runtime import Core


def timing_from(core: Core) -> Timing:
    c = core.config.cluster
    return Timing(
        lease_s=c.lease_s,
        renew_s=c.renew_s,
        margin_s=CLUSTER_MARGIN_S,
        retry_s=min(0.5, c.renew_s),
    )


def build(core: Core) -> tuple[Leadership, Election | None]:
    """The leadership for `core`'s configuration, and the election to start (None: alone)."""
    config = core.config
    if not config.cluster.enabled:
        return SoleLeader(config.advertised_address()), None
    url = config.resolved_database_url()
    engine = election_engine(url, core.engine)
    election = Election(
        engine,
        config.replica_id(),
        config.advertised_address(),
        core.clock,
        timing_from(core),
        owns_engine=engine is not core.engine,
    )
    return election, election


__all__ = ["build", "timing_from"]
