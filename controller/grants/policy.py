"""Who may see what by default: organisations, entitlements, roles and grant lifetimes.

The policy is data (`default_policy()`, or `policy_from_mapping` for a TOML/JSON file) and the
decisions are pure functions of it, so changing who sees what is a reviewed config change, and
a test can state the whole rule set. Entitlements are checked when a grant is minted *and*
every time it is used: withdrawing an entitlement takes effect without revoking grants one by
one. Defaults ("一总两分" plus nine counties): a county sees its own area, 综治 and 公安 see
class II and III city-wide, the city platform sees everything; an organisation always sees the
cameras it owns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from controller.grants.model import (
    DAY_US,
    HOUR_US,
    MINUTE_US,
    RESOURCE_CLASSES,
    CameraInfo,
    Operation,
    area_path,
    area_within,
    check_area,
)

CITY_AREA = "陇南市"
COUNTIES: tuple[tuple[str, str], ...] = (
    ("wudu", "武都区"),
    ("chengxian", "成县"),
    ("wenxian", "文县"),
    ("tanchang", "宕昌县"),
    ("kangxian", "康县"),
    ("xihe", "西和县"),
    ("lixian", "礼县"),
    ("huixian", "徽县"),
    ("liangdang", "两当县"),
)


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"
    INSTALLER = "installer"


@dataclass(frozen=True, slots=True)
class Organisation:
    org_id: str
    name: str
    kind: str  # "city", "department" or "county"
    home_area: str  # the area it administers (the city's for departments)


@dataclass(frozen=True, slots=True)
class Entitlement:
    """`org_id` sees cameras under any of `area_prefixes`, of `resource_classes` (empty: any)."""

    org_id: str
    area_prefixes: tuple[str, ...]
    resource_classes: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    org_id: str
    role: Role


_ALL_OPS = frozenset(Operation)


@dataclass(frozen=True, slots=True)
class Policy:
    organisations: Mapping[str, Organisation]
    entitlements: tuple[Entitlement, ...]
    role_operations: Mapping[Role, frozenset[Operation]] = field(
        default_factory=lambda: {
            Role.ADMIN: _ALL_OPS,
            Role.OPERATOR: _ALL_OPS,
            Role.VIEWER: frozenset({Operation.LIVE, Operation.PLAYBACK}),
            Role.INSTALLER: frozenset({Operation.LIVE}),
        }
    )
    # Default (and longest) lifetime of a non-delegable grant, per operation.
    lifetime_us: Mapping[Operation, int] = field(
        default_factory=lambda: {
            Operation.LIVE: 15 * MINUTE_US,
            Operation.PLAYBACK: HOUR_US,
            Operation.DOWNLOAD: DAY_US,
        }
    )
    delegation_lifetime_us: int = 30 * DAY_US  # longest lifetime of a delegable grant
    case_required_over_us: int = DAY_US
    city_org: str = "city"
    # Cross-organisation sharing on request (`policy_sharing`): an admin of the organisation
    # owning a camera may approve another organisation's request for it. False switches every
    # such share off at once (no new approvals, and approved shares stop authorizing).
    cross_org_requests: bool = True
    share_lifetime_us: int = 7 * DAY_US  # longest lifetime of an approved share
    request_ttl_us: int = 7 * DAY_US  # an unanswered request lapses after this long

    def organisation(self, org_id: str) -> Organisation | None:
        return self.organisations.get(org_id)


def default_policy() -> Policy:
    """The Longnan deployment: city platform, 综治, 公安, nine counties."""
    orgs = [
        Organisation("city", "陇南市视频共享平台", "city", CITY_AREA),
        Organisation("zongzhi", "综治分平台", "department", CITY_AREA),
        Organisation("gongan", "公安分平台", "department", CITY_AREA),
    ]
    orgs += [
        Organisation(org_id, name, "county", area_path(CITY_AREA, name))
        for org_id, name in COUNTIES
    ]
    ents = [
        Entitlement("city", (CITY_AREA,)),
        Entitlement("zongzhi", (CITY_AREA,), frozenset({"II", "III"})),
        Entitlement("gongan", (CITY_AREA,), frozenset({"II", "III"})),
    ]
    ents += [Entitlement(o.org_id, (o.home_area,)) for o in orgs if o.kind == "county"]
    return Policy({o.org_id: o for o in orgs}, tuple(ents))


def entitled(policy: Policy, org_id: str, camera: CameraInfo) -> bool:
    """May `org_id` see `camera` at all (before any grant narrows it)?"""
    if camera.owner_org == org_id and org_id in policy.organisations:
        return True
    for ent in policy.entitlements:
        if ent.org_id != org_id:
            continue
        if ent.resource_classes and camera.resource_class not in ent.resource_classes:
            continue
        if any(area_within(camera.area, p) for p in ent.area_prefixes):
            return True
    return False


def area_entitled(policy: Policy, org_id: str, prefix: str, classes: frozenset[str]) -> bool:
    """May `org_id` hold a grant for everything under `prefix` of `classes` (empty: any)?"""
    for ent in policy.entitlements:
        if ent.org_id != org_id or not any(area_within(prefix, p) for p in ent.area_prefixes):
            continue
        if not ent.resource_classes or (classes and classes <= ent.resource_classes):
            return True
    return False


def entitled_classes(policy: Policy, org_id: str, prefix: str) -> frozenset[str] | None:
    """The classes `org_id` may see under `prefix`: empty = any, None = not entitled."""
    best: frozenset[str] | None = None
    for ent in policy.entitlements:
        if ent.org_id != org_id or not any(area_within(prefix, p) for p in ent.area_prefixes):
            continue
        if not ent.resource_classes:
            return frozenset()
        best = ent.resource_classes if best is None else best | ent.resource_classes
    return best


def allowed_operations(policy: Policy, user: User) -> frozenset[Operation]:
    return policy.role_operations.get(user.role, frozenset())


def default_lifetime_us(policy: Policy, operations: frozenset[Operation]) -> int:
    """The shortest default among the operations asked for: least privilege in time."""
    return min(policy.lifetime_us[op] for op in operations)


# --- loading a policy from a file ------------------------------------------------------------


class PolicyError(ValueError):
    """The policy file is unusable; the message names the offending entry."""


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise PolicyError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise PolicyError(f"{where}: unknown keys {sorted(unknown)}")


def policy_from_mapping(data: Mapping[str, Any]) -> Policy:
    """A Policy from parsed TOML/JSON; PolicyError on anything unknown or inconsistent.

    ```
    [[organisations]]  org_id, name, kind, home_area
    [[entitlements]]   org_id, area_prefixes = [...], resource_classes = [...]
    [lifetimes_s]      live, playback, download, delegation, share, request
    cross_org_requests = true
    ```"""
    _keys(
        data,
        {"organisations", "entitlements", "lifetimes_s", "city_org", "cross_org_requests"},
        "policy",
    )
    orgs: dict[str, Organisation] = {}
    for i, raw in enumerate(data.get("organisations", [])):
        where = f"organisations[{i}]"
        if not isinstance(raw, Mapping):
            raise PolicyError(f"{where}: expected a table")
        _keys(raw, {"org_id", "name", "kind", "home_area"}, where)
        kind = _str(raw.get("kind"), f"{where}.kind")
        if kind not in ("city", "department", "county"):
            raise PolicyError(f"{where}.kind: {kind!r} is not city, department or county")
        try:
            home = check_area(_str(raw.get("home_area"), f"{where}.home_area"))
        except ValueError as exc:
            raise PolicyError(f"{where}.home_area: {exc}") from None
        org = Organisation(
            _str(raw.get("org_id"), f"{where}.org_id"), _str(raw.get("name"), where), kind, home
        )
        if org.org_id in orgs:
            raise PolicyError(f"{where}: duplicate org_id {org.org_id!r}")
        orgs[org.org_id] = org
    ents: list[Entitlement] = []
    for i, raw in enumerate(data.get("entitlements", [])):
        where = f"entitlements[{i}]"
        if not isinstance(raw, Mapping):
            raise PolicyError(f"{where}: expected a table")
        _keys(raw, {"org_id", "area_prefixes", "resource_classes"}, where)
        org_id = _str(raw.get("org_id"), f"{where}.org_id")
        if org_id not in orgs:
            raise PolicyError(f"{where}: unknown organisation {org_id!r}")
        prefixes = raw.get("area_prefixes")
        if not isinstance(prefixes, list) or not prefixes:
            raise PolicyError(f"{where}.area_prefixes: expected a non-empty list")
        try:
            checked = tuple(check_area(_str(p, f"{where}.area_prefixes")) for p in prefixes)
        except ValueError as exc:
            raise PolicyError(f"{where}.area_prefixes: {exc}") from None
        classes = frozenset(raw.get("resource_classes", []))
        if not classes <= RESOURCE_CLASSES:
            raise PolicyError(f"{where}.resource_classes: must be among {sorted(RESOURCE_CLASSES)}")
        ents.append(Entitlement(org_id, checked, classes))
    base = Policy(orgs, tuple(ents))
    lifetimes = dict(base.lifetime_us)
    delegation = base.delegation_lifetime_us
    share, request_ttl = base.share_lifetime_us, base.request_ttl_us
    raw_l = data.get("lifetimes_s", {})
    if not isinstance(raw_l, Mapping):
        raise PolicyError("lifetimes_s: expected a table")
    _keys(raw_l, {"live", "playback", "download", "delegation", "share", "request"}, "lifetimes_s")
    for name, seconds in raw_l.items():
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int)
            or not 60 <= seconds <= 366 * 86400
        ):
            raise PolicyError(f"lifetimes_s.{name}: expected whole seconds in 60..31622400")
        if name == "delegation":
            delegation = seconds * 1_000_000
        elif name == "share":
            share = seconds * 1_000_000
        elif name == "request":
            request_ttl = seconds * 1_000_000
        else:
            lifetimes[Operation(name)] = seconds * 1_000_000
    city_org = data.get("city_org", "city")
    if city_org not in orgs:
        raise PolicyError(f"city_org {city_org!r} is not one of the organisations")
    cross = data.get("cross_org_requests", True)
    if not isinstance(cross, bool):
        raise PolicyError("cross_org_requests: expected true or false")
    return Policy(
        orgs,
        tuple(ents),
        lifetime_us=lifetimes,
        delegation_lifetime_us=delegation,
        city_org=city_org,
        cross_org_requests=cross,
        share_lifetime_us=share,
        request_ttl_us=request_ttl,
    )


def county_org(policy: Policy, county: str) -> str:
    """The organisation administering `county` (by name or id); "" when none does."""
    for org in policy.organisations.values():
        if org.kind == "county" and county in (org.name, org.org_id):
            return org.org_id
    return ""


def camera_info(
    policy: Policy,
    camera_id: str,
    county: str,
    site: str,
    resource_class: str,
    *,
    township: str = "",
    village: str = "",
    owner_org: str | None = None,
    city: str = CITY_AREA,
) -> CameraInfo:
    """A CameraInfo from catalog facts: area `city/county[/township/village]/site/camera`,
    owned by the county's organisation unless `owner_org` says otherwise."""
    # The registry may name a county by its id ("wudu") or its name ("武都区"); areas always use
    # the name, so a grant for the county's home area covers its cameras either way.
    org = policy.organisations.get(county_org(policy, county))
    county_name = org.name if org is not None else county
    parts = [city, county_name, *(p for p in (township, village) if p), site, camera_id]
    owner = county_org(policy, county) if owner_org is None else owner_org
    return CameraInfo(camera_id, area_path(*parts), resource_class, owner)
