"""The upload scheduler as the control centre sees it: the current plan and delivery per link.

    GET /api/v1/scheduler/plan     plan version, per-device planned rates per class, leases,
                                   links with planned vs delivered and which are saturated
    GET /api/v1/scheduler/links    planned vs delivered bit/s per link

Operators and admins only. A county sees its own devices and the links they hang from; the
city and city-wide departments see everything. Without a running scheduler both answer 503
`scheduler_unavailable` (the API never invents an empty plan that looks real).

"Saturated" is judged here from the snapshot: a link whose planned load reaches its usable
capacity (capacity less its live reserve), within 1 %. The planner has its own notion; this
one needs nothing but what the snapshot and topology expose.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fastapi import APIRouter

from controller.api.common import refuse, sees_county
from controller.api.deps import ApiDeps, DepsDep, SchedulerView, UserDep
from controller.api.schemas import DevicePlanOut, LinkOut, PlanOut
from controller.grants.policy import Role, User
from controller.scheduler.leases import LinkDelivery
from controller.scheduler.topology import Topology

router = APIRouter(prefix="/api/v1/scheduler", tags=["scheduler"])

ALLOWED = frozenset({Role.ADMIN, Role.OPERATOR})
SATURATION = 0.99


def usable_capacity(topology: Topology) -> dict[str, int]:
    """Link id -> bit/s the planner may fill with non-live traffic."""
    ct = topology.compiled
    return {link_id: ct.capacity[i] - ct.reserve_cap[i] for i, link_id in enumerate(ct.link_ids)}


def link_out(link: LinkDelivery, usable: Mapping[str, int]) -> LinkOut:
    """The API shape of one link (pure)."""
    cap = usable.get(link.link_id, link.capacity_bps)
    ratio = link.ratio
    return LinkOut(
        link_id=link.link_id,
        capacity_bps=link.capacity_bps,
        planned_bps=link.planned_bps,
        delivered_bps=link.delivered_bps,
        ratio=None if ratio is None else round(ratio, 3),
        saturated=cap > 0 and link.planned_bps >= SATURATION * cap,
    )


def visible_links(topology: Topology, device_links: Iterable[str]) -> set[str]:
    """The links on the paths from `device_links` up to the root (pure)."""
    ct = topology.compiled
    out: set[str] = set()
    for link_id in device_links:
        i = ct.index.get(link_id)
        if i is not None:
            out.update(ct.link_ids[j] for j in ct.paths[i])
    return out


def _scheduler(deps: ApiDeps, action: str, who: User) -> SchedulerView:
    if who.role not in ALLOWED:
        refuse(deps, action, who, "role_not_allowed", "only admin or operator may see the plan")
    scheduler = deps.scheduler
    if scheduler is None:
        refuse(
            deps,
            action,
            who,
            "scheduler_unavailable",
            "this controller runs no upload scheduler",
            status=503,
        )
    return scheduler


def _county_of(deps: ApiDeps) -> dict[str, str]:
    return {d.device_id: d.county for d in deps.catalog.devices()}


def _sees_all(deps: ApiDeps, who: User) -> bool:
    org = deps.policy.organisation(who.org_id)
    return org is not None and org.kind != "county"


@router.get("/plan", response_model=PlanOut)
def plan(user: UserDep, deps: DepsDep) -> PlanOut:
    scheduler = _scheduler(deps, "scheduler_plan", user)
    snap = scheduler.snapshot()
    topology = scheduler.topology
    county = _county_of(deps)
    devices = [d for d in snap.devices if sees_county(deps, user, county.get(d.device_id, ""))]
    links = snap.links
    if not _sees_all(deps, user):
        allowed = visible_links(topology, (d.link_id for d in devices if d.link_id))
        links = [link for link in links if link.link_id in allowed]
    usable = usable_capacity(topology)
    out_links = [link_out(link, usable) for link in links]
    return PlanOut(
        at_us=snap.at_us,
        plan_version=snap.plan_version,
        devices=[
            DevicePlanOut(
                device_id=d.device_id,
                connected=d.connected,
                link_id=d.link_id,
                rates_bps=dict(d.rates_bps),
                planned_bps=d.planned_bps,
                delivered_bps=d.delivered_bps,
                lease_id=d.lease_id,
                lease_segments=d.lease_segments,
                lease_expires_us=d.lease_expires_us,
            )
            for d in devices
        ],
        links=out_links,
        saturated_links=[link.link_id for link in out_links if link.saturated],
        counters=dict(snap.counters),
    )


@router.get("/links", response_model=list[LinkOut])
def links(user: UserDep, deps: DepsDep) -> list[LinkOut]:
    scheduler = _scheduler(deps, "scheduler_links", user)
    topology = scheduler.topology
    delivery = scheduler.delivery()
    if not _sees_all(deps, user):
        county = _county_of(deps)
        mine = [
            d.link_id
            for d in scheduler.snapshot().devices
            if d.link_id and sees_county(deps, user, county.get(d.device_id, ""))
        ]
        allowed = visible_links(topology, mine)
        delivery = [link for link in delivery if link.link_id in allowed]
    usable = usable_capacity(topology)
    return [link_out(link, usable) for link in delivery]
