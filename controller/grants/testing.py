"""A small kit for building keys, cameras and grant chains in tests and benchmarks.

Not used by the running controller. It signs real grants with real keys, so whatever is built
here goes through exactly the checks production tokens go through.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from controller.grants.codec import Chain, Link, anchors_from, raw_public_key, sign_grant
from controller.grants.model import HOUR_US, CameraInfo, GrantBody, Operation
from controller.grants.policy import Policy, camera_info, default_policy

NOW_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def new_grant_id() -> str:
    return secrets.token_hex(16)


@dataclass
class GrantKit:
    """A city root key, the default policy, and a fixed `now`."""

    now_us: int = NOW_US
    root: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    policy: Policy = field(default_factory=default_policy)

    @property
    def anchors(self) -> dict[str, Ed25519PublicKey]:
        return anchors_from([raw_public_key(self.root)])

    def camera(
        self,
        camera_id: str = "cam-01",
        county: str = "成县",
        site: str = "site-01",
        cls: str = "II",
    ) -> CameraInfo:
        return camera_info(self.policy, camera_id, county, site, cls)

    def body(self, **overrides: Any) -> GrantBody:
        """A root grant to 成县 for its whole area: live + playback, footage of the last two
        hours and the next one, valid for an hour from now."""
        base = GrantBody(
            grant_id=new_grant_id(),
            parent_id="",
            issuer_org="city",
            holder_org="chengxian",
            holder_user="",
            holder_public_key=b"",
            camera_ids=frozenset(),
            area_prefixes=("陇南市/成县",),
            resource_classes=frozenset(),
            footage_from_us=self.now_us - 2 * HOUR_US,
            footage_to_us=self.now_us + HOUR_US,
            operations=frozenset({Operation.LIVE, Operation.PLAYBACK}),
            not_before_us=self.now_us,
            expires_us=self.now_us + HOUR_US,
            purpose="test",
            case_id="",
            watermark_id="wm-1",
            download_limit=0,
            issued_at_us=self.now_us,
        )
        return replace(base, **overrides)

    def root_link(self, **overrides: Any) -> Link:
        return sign_grant(self.body(**overrides), self.root)

    def child_of(self, parent: Link, parent_key: Ed25519PrivateKey, **overrides: Any) -> Link:
        """A child of `parent` equal to it in scope and time, unless overridden."""
        p = parent.body
        values: dict[str, Any] = {
            "grant_id": new_grant_id(),
            "parent_id": p.grant_id,
            "issuer_org": p.holder_org,
            "holder_public_key": b"",
            "download_limit": p.download_limit,
        }
        values.update(overrides)
        return sign_grant(replace(p, **values), parent_key)

    def chain3(self) -> tuple[Chain, Ed25519PrivateKey, Ed25519PrivateKey]:
        """city -> 成县 (delegable) -> officer unit (delegable) -> officer: three links.
        Returns the chain and the county's and the unit's private keys."""
        county = Ed25519PrivateKey.generate()
        unit = Ed25519PrivateKey.generate()
        root = self.root_link(holder_public_key=raw_public_key(county))
        mid = self.child_of(root, county, holder_public_key=raw_public_key(unit))
        leaf = self.child_of(mid, unit, holder_user="officer-7")
        return Chain((root, mid, leaf)), county, unit
