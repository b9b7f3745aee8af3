"""Upload traffic classes, shared by footage requests (`controller.jobs`) and the scheduler,
and `SchedulerError`, which refuses a class name (and roots the scheduler's error tree, see
`controller.scheduler.model`).

A module of its own below both packages: jobs record a request's class and the scheduler plans
by class, so neither has to import the other for the vocabulary.
"""

from __future__ import annotations

from enum import IntEnum


class SchedulerError(ValueError):
    """Input the scheduler refuses; the previous topology, demand and plan stay in force."""


class TrafficClass(IntEnum):
    """Upload priority classes; strict priority, lower value first (matches vigil.v1)."""

    EVIDENCE = 1  # footage an operator requested, with a deadline
    LIVE = 2  # cameras being watched
    EVENT = 3  # alarms
    ARCHIVE = 4  # cameras whose policy keeps a cloud copy
    BACKFILL = 5  # everything else still only on the edge

    @classmethod
    def parse(cls, name: str) -> TrafficClass:
        """The class named `name` (case-insensitive), or a SchedulerError listing the names."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            names = ", ".join(c.name.lower() for c in cls)
            raise SchedulerError(f"unknown traffic class {name!r} (one of: {names})") from None
