"""Delegation may only narrow: a child grant is within its parent in every dimension.

Checked statically here (scope, classes, window, operations, validity, download limit, case),
and the scope once more at use time: a child camera id under a parent that scopes by area can
only be placed once the camera's area is known, so `access.authorize` requires the camera to be
in scope of *every* link. Together the effective scope is the intersection along the chain,
which can never be wider than any ancestor.
"""

from __future__ import annotations

from controller.grants.errors import GrantRefused, Reason
from controller.grants.model import GrantBody, area_within


def widening(parent: GrantBody, child: GrantBody) -> str | None:
    """The first dimension in which `child` is wider than `parent`, as a sentence; None if
    the child is narrower or equal in every dimension."""
    if parent.resource_classes and not (
        child.resource_classes and child.resource_classes <= parent.resource_classes
    ):
        return (
            f"resource classes {sorted(child.resource_classes) or 'any'} exceed the parent's "
            f"{sorted(parent.resource_classes)}"
        )
    for prefix in child.area_prefixes:
        if not any(area_within(prefix, p) for p in parent.area_prefixes):
            return f"area {prefix!r} is outside the parent's scope"
    if not parent.area_prefixes:
        extra = sorted(child.camera_ids - parent.camera_ids)
        if extra:
            return f"camera {extra[0]!r} is outside the parent's scope"
    if child.footage_from_us < parent.footage_from_us or (
        child.footage_to_us > parent.footage_to_us
    ):
        return "footage window extends beyond the parent's window"
    extra_ops = sorted(child.operations - parent.operations)
    if extra_ops:
        return f"operation {extra_ops[0]} is not granted by the parent"
    if child.not_before_us < parent.not_before_us:
        return "becomes valid before the parent does"
    if child.expires_us > parent.expires_us:
        return "lifetime extends beyond the parent's expiry"
    if parent.download_limit and not 0 < child.download_limit <= parent.download_limit:
        return f"download limit {child.download_limit or 'unlimited'} exceeds the parent's"
    if parent.case_id and child.case_id != parent.case_id:
        return f"case id {child.case_id!r} differs from the parent's {parent.case_id!r}"
    return None


def check_narrower(parent: GrantBody, child: GrantBody) -> None:
    """GrantRefused(WIDENED) when `child` is wider than `parent` in any dimension."""
    problem = widening(parent, child)
    if problem is not None:
        raise GrantRefused(
            Reason.WIDENED, f"child grant {child.grant_id} widens {parent.grant_id}: {problem}"
        )
