"""Which cameras an organisation may see, as filter terms a database query can apply.

`controller.grants.policy.entitled` decides one camera at a time from its area path
(`city/county/site/camera`) and class. Listing 17,000 cameras a page at a time needs the same
rule as a WHERE clause; `visibility` turns the policy into terms (OR of AND), and a unit test
holds the two equal over every shape of entitlement. Kept pure: no SQL here, the store
translates terms.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.grants.policy import Policy


@dataclass(frozen=True, slots=True)
class Term:
    """Cameras whose county is one of `counties` (None: any), at `site` and `camera` when
    set, of `classes` (empty: any)."""

    counties: frozenset[str] | None = None
    site: str | None = None
    camera: str | None = None
    classes: frozenset[str] = frozenset()


def county_aliases(policy: Policy, component: str) -> frozenset[str]:
    """The registry county values whose area component is `component`: a county
    organisation's name stands for its id and its name; any other value stands for itself,
    unless it is a county organisation's id (that county's path uses its name)."""
    for org in policy.organisations.values():
        if org.kind == "county" and component == org.name:
            return frozenset({org.org_id, org.name})
    for org in policy.organisations.values():
        if org.kind == "county" and component == org.org_id:
            return frozenset()
    return frozenset({component})


def city_area(policy: Policy) -> str:
    """The city's area (the components above the county in every camera's path)."""
    city = policy.organisation(policy.city_org)
    return city.home_area if city is not None else ""


def prefix_term(policy: Policy, prefix: str, classes: frozenset[str]) -> Term | None:
    """The term for one entitlement prefix; None when it can cover no camera.

    A camera's path is city/county/site/camera (controller.grants.policy.camera_info)."""
    city = city_area(policy).split("/")
    parts = prefix.split("/")
    if len(parts) <= len(city):
        return Term(classes=classes) if parts == city[: len(parts)] else None
    rest = parts[len(city) :]
    if parts[: len(city)] != city or len(rest) > 3:
        return None
    counties = county_aliases(policy, rest[0])
    if not counties:
        return None
    return Term(
        counties=counties,
        site=rest[1] if len(rest) > 1 else None,
        camera=rest[2] if len(rest) > 2 else None,
        classes=classes,
    )


def visibility(policy: Policy, org_id: str) -> tuple[Term, ...]:
    """The terms whose union is what `org_id` may see (empty: nothing)."""
    if org_id not in policy.organisations:
        return ()
    terms: list[Term] = []
    org = policy.organisations[org_id]
    if org.kind == "county":  # an organisation always sees the cameras it owns
        terms.append(Term(counties=frozenset({org.org_id, org.name})))
    for ent in policy.entitlements:
        if ent.org_id != org_id:
            continue
        for prefix in ent.area_prefixes:
            term = prefix_term(policy, prefix, ent.resource_classes)
            if term is not None:
                terms.append(term)
    return tuple(dict.fromkeys(terms))


def matches(terms: tuple[Term, ...], county: str, site: str, camera: str, klass: str) -> bool:
    """The terms applied to one camera (what the SQL does; the unit test compares)."""
    for t in terms:
        if t.counties is not None and county not in t.counties:
            continue
        if t.site is not None and site != t.site:
            continue
        if t.camera is not None and camera != t.camera:
            continue
        if t.classes and klass not in t.classes:
            continue
        return True
    return False


def county_filter(policy: Policy, value: str) -> frozenset[str]:
    """The registry values a console filter `county=value` means (id or name, either way)."""
    for org in policy.organisations.values():
        if org.kind == "county" and value in (org.org_id, org.name):
            return frozenset({org.org_id, org.name})
    return frozenset({value})


def county_label(policy: Policy, county: str) -> str:
    """The name a registry county value is shown by (武都区, never "wudu")."""
    for org in policy.organisations.values():
        if org.kind == "county" and county in (org.org_id, org.name):
            return org.name
    return county
