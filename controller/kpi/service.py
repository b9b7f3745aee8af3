"""A report from the database in one call (what the command and the API both use)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from controller.clock import Clock
from controller.grants.policy import Policy
from controller.kpi import render as rd
from controller.kpi.report import build
from controller.kpi.source import ReportInputError, read_facts

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

FORMATS = ("html", "csv", "json")


def make_report(
    engine: Engine,
    clock: Clock,
    policy: Policy,
    targets: Mapping[str, int],
    start_us: int,
    end_us: int,
    org: str | None = None,
) -> dict[str, Any]:
    """The report dict (ReportInputError for a bad period or organisation)."""
    facts = read_facts(engine, clock, policy, start_us, end_us, org)
    return build(facts, policy, targets, org)


def render(report: Mapping[str, Any], fmt: str) -> str:
    if fmt == "json":
        return rd.to_json(report)
    if fmt == "csv":
        return rd.to_csv(report)
    if fmt == "html":
        return rd.to_html(report)
    raise ReportInputError(f"unknown format {fmt!r} (one of: {', '.join(FORMATS)})")


__all__ = ["FORMATS", "ReportInputError", "make_report", "render"]
