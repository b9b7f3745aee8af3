"""Who may act on the installer API (install.py, install_sites.py): installers and admins; a
county's users only in their own county (refused 403 and audited), the city's anywhere."""

from __future__ import annotations

from controller.api.common import refuse
from controller.api.deps import ApiDeps
from controller.grants.policy import Role, User

ALLOWED = frozenset({Role.ADMIN, Role.INSTALLER})


def may_act(deps: ApiDeps, who: User, county: str, action: str, device_id: str) -> None:
    if who.role not in ALLOWED:
        refuse(deps, action, who, "role_not_allowed", "installers and admins only", status=403)
    org = deps.policy.organisation(who.org_id)
    if org is None or (org.kind == "county" and county not in (org.org_id, org.name)):
        refuse(
            deps,
            action,
            who,
            "outside_county",
            f"{who.org_id!r} may not act on devices of county {county!r}",
            status=403,
            detail={"device_id": device_id, "county": county},
        )
