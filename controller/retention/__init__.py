"""Cloud retention: copies kept per camera policy (30 days by default), held ranges kept until
released, expired objects and their catalog rows deleted together and every deletion recorded.

`plan.py` decides (pure); `sweep.py` carries it out against the catalog and the object store.
"""

from controller.retention.plan import (
    DAY_US,
    DEFAULT_RETENTION_DAYS,
    RetentionPlan,
    cutoff_us,
    is_held,
    key_hour_us,
    orphan_deletable,
    plan_retention,
)
from controller.retention.sweep import (
    REASON_EXPIRED,
    REASON_ORPHAN,
    OrphanReport,
    SweepReport,
    delete_orphan_objects,
    find_orphans,
    sweep_retention,
)

__all__ = [
    "DAY_US",
    "DEFAULT_RETENTION_DAYS",
    "REASON_EXPIRED",
    "REASON_ORPHAN",
    "OrphanReport",
    "RetentionPlan",
    "SweepReport",
    "cutoff_us",
    "delete_orphan_objects",
    "find_orphans",
    "is_held",
    "key_hour_us",
    "orphan_deletable",
    "plan_retention",
    "sweep_retention",
]
