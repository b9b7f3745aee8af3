"""The grant service: the pure grant decisions wired to keys, the grant store and the audit
log. Playback (`controller.playback.service`) and exports (`controller.exports.service`) build
on its `authorize`.

Every method either succeeds and leaves an audit entry, or raises `GrantRefused` after
auditing the refusal (reason and message verbatim); an audit failure (`AuditError`) also stops
the action, so nothing is ever served unrecorded.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, NoReturn

from sqlalchemy.engine import Engine

from controller.audit.chain import AuditEvent
from controller.audit.log import AuditLog
from controller.clock import Clock
from controller.grants.access import Access, AccessRequest, authorize, check_presenter
from controller.grants.chain import SignatureCache, verify_chain
from controller.grants.codec import Chain, anchors_from, decode_token, encode_token, sign_grant
from controller.grants.errors import GrantRefused, Reason
from controller.grants.keys import SharingKeys
from controller.grants.mint import GrantRequest, plan_renewal, plan_root_grant
from controller.grants.model import GRANT_ID, CameraInfo
from controller.grants.policy import Policy, Role, User
from controller.grants.revocation import check_revoker, make_view, sign_revocation_list
from controller.grants.store import GrantStore

REVOKED_CACHE_S = 5.0  # replicas re-read revocations at least this often (well within 60 s)


class GrantService:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        keys: SharingKeys,
        policy: Policy,
        audit: AuditLog,
        *,
        new_id: Callable[[], str] = lambda: secrets.token_hex(16),
    ) -> None:
        self.clock = clock
        self.keys = keys
        self.policy = policy
        self.audit = audit
        self.store = GrantStore(engine)
        self.anchors = anchors_from([keys.root_public])
        self.new_id = new_id
        self._lock = threading.Lock()
        self._signatures = SignatureCache()
        self._revoked: frozenset[str] = frozenset()
        self._revoked_at: float | None = None

    # --- helpers ----------------------------------------------------------------------------

    def revoked(self) -> frozenset[str]:
        """Revoked grant ids, re-read from the shared database every few seconds."""
        mono = self.clock.monotonic()
        with self._lock:
            if self._revoked_at is None or mono - self._revoked_at >= REVOKED_CACHE_S:
                self._revoked = self.store.revocations(self.clock.now_us()).revoked
                self._revoked_at = mono
            return self._revoked

    def record(self, action: str, who: User | None, **fields: Any) -> None:
        """Audit one event. A refusal of an unauthenticated request (no or a bad session) is
        aggregated per client address instead (`AuditLog.append_unauthenticated`): anyone
        can send those, and one serialised audit write each would slow every writer."""
        event = self.event(action, who, **fields)
        if who is None and event.outcome == "refused" and event.reason == "unauthenticated":
            self.audit.append_unauthenticated(event, sample=event.camera_id)
            return
        self.audit.append(event)

    def event(self, action: str, who: User | None, **fields: Any) -> AuditEvent:
        """The audit event `record` would write (for callers that write several at once)."""
        detail = fields.pop("detail", {})
        return AuditEvent(
            action=action,
            actor_user=who.user_id if who else "",
            actor_org=who.org_id if who else "",
            detail=detail,
            **fields,
        )

    def refuse(self, exc: GrantRefused, action: str, who: User | None, **fields: Any) -> NoReturn:
        self.record(
            action,
            who,
            outcome="refused",
            reason=exc.reason.value,
            detail={"message": exc.message, **fields.pop("detail", {})},
            **fields,
        )
        raise exc

    def _decode(self, token: str, action: str, who: User | None) -> Chain:
        try:
            return decode_token(token)
        except GrantRefused as exc:
            self.refuse(exc, action, who)

    def _note_delegations(self, chain: Chain, who: User | None) -> None:
        for gid in self.store.record_seen(chain, self.clock.now_us()):
            body = next(link.body for link in chain.links if link.body.grant_id == gid)
            if body.parent_id:
                self.record(
                    "grant_delegated",
                    who,
                    grant_id=gid,
                    case_id=body.case_id,
                    detail={
                        "parent": body.parent_id,
                        "issuer_org": body.issuer_org,
                        "holder_org": body.holder_org,
                        "expires_us": body.expires_us,
                    },
                )

    # --- grants -----------------------------------------------------------------------------

    def mint(self, requester: User, req: GrantRequest, cameras: Mapping[str, CameraInfo]) -> str:
        """Mint a root grant for `req`; returns its bearer token."""
        now = self.clock.now_us()
        try:
            body = plan_root_grant(self.policy, requester, req, cameras, now, self.new_id())
        except GrantRefused as exc:
            self.refuse(
                exc,
                "grant_mint",
                requester,
                case_id=req.case_id[:128],
                detail={"holder_org": req.holder_org},
            )
        link = sign_grant(body, self.keys.root)
        self.record(
            "grant_minted",
            requester,
            grant_id=body.grant_id,
            case_id=body.case_id,
            detail={
                "holder_org": body.holder_org,
                "holder_user": body.holder_user,
                "operations": sorted(body.operations),
                "cameras": sorted(body.camera_ids)[:50],
                "areas": list(body.area_prefixes)[:50],
                "from_us": body.footage_from_us,
                "to_us": body.footage_to_us,
                "expires_us": body.expires_us,
                "delegable": body.delegable,
                "watermark_id": body.watermark_id,
                "purpose": body.purpose,
            },
        )
        self.store.record_seen(Chain((link,)), now)
        return encode_token([link])

    def renew(self, token: str, presenter: User) -> str:
        """A live grant minted here, valid for another live lifetime (same id)."""
        chain = self._decode(token, "grant_renew", presenter)
        now = self.clock.now_us()
        try:
            verify_chain(chain, self.anchors, now, self.revoked(), cache=self._signatures)
            check_presenter(chain, presenter.org_id, presenter.user_id)
            if len(chain.links) != 1:
                raise GrantRefused(Reason.BAD_REQUEST, "a delegated grant is renewed by its issuer")
            body = plan_renewal(chain.leaf, None, self.policy, now)
        except GrantRefused as exc:
            self.refuse(exc, "grant_renew", presenter, grant_id=chain.leaf.grant_id)
        link = sign_grant(body, self.keys.root)
        self.record(
            "grant_renewed",
            presenter,
            grant_id=body.grant_id,
            detail={"renewal": body.renewal, "expires_us": body.expires_us},
        )
        return encode_token([link])

    def revoke(self, grant_id: str, by: User, reason: str) -> int:
        """Revoke a grant (and so every grant below it); returns the list sequence.

        Only the city's admins, the issuing organisation's, or those of an organisation
        holding it or a grant above it (`check_revoker`); unknown ids are refused."""
        now = self.clock.now_us()
        try:
            if not GRANT_ID.fullmatch(grant_id):
                raise GrantRefused(Reason.MALFORMED, "grant id is not 32 lowercase hex digits")
            check_revoker(
                self.store.lineage(grant_id),
                by.org_id,
                by.role is Role.ADMIN,
                self.policy.city_org,
                self.store.listed_count(now),
                already_revoked=grant_id in self.store.revocations(now).revoked,
            )
        except GrantRefused as exc:
            self.refuse(exc, "grant_revoke", by, grant_id=grant_id[:64])
        seq, new = self.store.revoke(
            grant_id, now, by.user_id, reason, self.store.expiry_of(grant_id)
        )
        with self._lock:
            self._revoked_at = None
        self.record(
            "grant_revoked",
            by,
            grant_id=grant_id,
            detail={"sequence": seq, "new": new, "reason": reason[:256]},
        )
        return seq

    def revocation_list(self) -> bytes:
        """The signed revocation list to publish (fresh, valid 60 s)."""
        now = self.clock.now_us()
        current = self.store.revocations(now)
        return sign_revocation_list(
            make_view(current.sequence, current.revoked, now), self.keys.root
        )

    # --- access -----------------------------------------------------------------------------

    def authorize(
        self, token: str, request: AccessRequest, presenter: User | None, action: str
    ) -> Access:
        """Decode and authorize, auditing refusals (and first-seen delegations)."""
        if presenter is not None:  # the authenticated caller, whatever the request says
            request = replace(
                request, presenter_org=presenter.org_id, presenter_user=presenter.user_id
            )
        chain = self._decode(token, action, presenter)
        try:
            access = authorize(
                chain,
                self.anchors,
                self.policy,
                request,
                self.revoked(),
                self.clock.now_us(),
                cache=self._signatures,
            )
        except GrantRefused as exc:
            self.refuse(
                exc,
                action,
                presenter,
                grant_id=chain.leaf.grant_id,
                camera_id=request.camera.camera_id,
                case_id=chain.leaf.case_id,
                detail={
                    "operation": request.operation.value,
                    "from_us": request.from_us,
                    "to_us": request.to_us,
                },
            )
        self._note_delegations(chain, presenter)
        return access

    # --- other audited events ---------------------------------------------------------------

    def record_login(self, user_id: str, org_id: str, ok: bool, detail: Mapping[str, Any]) -> None:
        self.audit.append(
            AuditEvent(
                action="login",
                actor_user=user_id,
                actor_org=org_id,
                outcome="ok" if ok else "refused",
                detail=dict(detail),
            )
        )

    def record_admin_change(self, by: User, what: str, detail: Mapping[str, Any]) -> None:
        self.record("admin_change", by, detail={"what": what, **detail})
