"""The audit log's hash chain and signed checkpoints, and their verification (pure).

Entry n stores SHA-256 over its own fields *and* entry n-1's hash, so editing, deleting or
reordering any entry breaks every later link. Hashes alone can be recomputed by whoever can
write the database, so every `CHECKPOINT_EVERY` entries (and on a timer) the controller signs
(seq, hash) with its evidence key; each checkpoint names the previous one, so deleting a
checkpoint shows too. What remains unprovable without an outside copy is a cut of the tail
after the newest checkpoint: `verify_log` reports how many entries are not yet covered, and an
*anchor* (a checkpoint kept elsewhere, e.g. by `verify-audit --save-anchor`) detects that cut.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from controller.keyid import key_id, raw_public_key

GENESIS_HASH = hashlib.sha256(b"vigil-audit/1").hexdigest()
CHECKPOINT_DOMAIN = b"vigil.v1.AuditCheckpoint\x00"
CHECKPOINT_EVERY = 64
MAX_FIELD_CHARS = 256
MAX_DETAIL_CHARS = 8192


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """Something to record. `detail` is any JSON-able mapping (stored canonically)."""

    action: str
    actor_user: str = ""
    actor_org: str = ""
    camera_id: str = ""
    case_id: str = ""
    grant_id: str = ""
    outcome: str = "ok"  # "ok" or "refused"
    reason: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A recorded event, as stored: its place in the chain and its hash."""

    seq: int
    at_us: int
    action: str
    actor_user: str
    actor_org: str
    camera_id: str
    case_id: str
    grant_id: str
    outcome: str
    reason: str
    detail: str  # canonical JSON
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    hash: str
    at_us: int
    prev_checkpoint_seq: int  # 0 for the first
    key_id: str
    signature: str  # hex


@dataclass(slots=True)
class AuditReport:
    entries: int = 0
    last_seq: int = 0
    checkpoints: int = 0
    covered_seq: int = 0  # the newest checkpointed seq that verified
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def uncovered(self) -> int:
        """Entries after the newest verified checkpoint (provable only with an anchor)."""
        return max(0, self.last_seq - self.covered_seq)


def canonical_detail(detail: Mapping[str, Any]) -> str:
    text = json.dumps(dict(detail), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    if len(text) > MAX_DETAIL_CHARS:
        text = json.dumps({"truncated": text[: MAX_DETAIL_CHARS - 64]}, ensure_ascii=False)
    return text


def clip(value: str) -> str:
    return value[:MAX_FIELD_CHARS]


def entry_hash(
    seq: int,
    at_us: int,
    action: str,
    actor_user: str,
    actor_org: str,
    camera_id: str,
    case_id: str,
    grant_id: str,
    outcome: str,
    reason: str,
    detail: str,
    prev_hash: str,
) -> str:
    fields = [seq, at_us, action, actor_user, actor_org, camera_id, case_id, grant_id]
    fields += [outcome, reason, detail, prev_hash]
    data = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def make_entry(seq: int, at_us: int, event: AuditEvent, prev_hash: str) -> AuditEntry:
    """The entry recording `event` as number `seq` after an entry hashing to `prev_hash`."""
    values = (
        clip(event.action),
        clip(event.actor_user),
        clip(event.actor_org),
        clip(event.camera_id),
        clip(event.case_id),
        clip(event.grant_id),
        clip(event.outcome),
        clip(event.reason),
        canonical_detail(event.detail),
    )
    digest = entry_hash(seq, at_us, *values, prev_hash)
    return AuditEntry(seq, at_us, *values, prev_hash, digest)


def rehash(entry: AuditEntry) -> str:
    return entry_hash(
        entry.seq,
        entry.at_us,
        entry.action,
        entry.actor_user,
        entry.actor_org,
        entry.camera_id,
        entry.case_id,
        entry.grant_id,
        entry.outcome,
        entry.reason,
        entry.detail,
        entry.prev_hash,
    )


def checkpoint_payload(seq: int, digest: str, at_us: int, prev_checkpoint_seq: int) -> bytes:
    return CHECKPOINT_DOMAIN + f"{seq}\n{digest}\n{at_us}\n{prev_checkpoint_seq}".encode("ascii")


def sign_checkpoint(
    seq: int, digest: str, at_us: int, prev_checkpoint_seq: int, key: Ed25519PrivateKey
) -> Checkpoint:
    signature = key.sign(checkpoint_payload(seq, digest, at_us, prev_checkpoint_seq))
    kid = key_id(raw_public_key(key))
    return Checkpoint(seq, digest, at_us, prev_checkpoint_seq, kid, signature.hex())


def checkpoint_valid(cp: Checkpoint, public: Ed25519PublicKey, public_kid: str) -> bool:
    if cp.key_id != public_kid:
        return False
    try:
        signature = bytes.fromhex(cp.signature)
        public.verify(
            signature, checkpoint_payload(cp.seq, cp.hash, cp.at_us, cp.prev_checkpoint_seq)
        )
    except (ValueError, InvalidSignature):
        return False
    return True


def verify_log(
    entries: Iterable[AuditEntry],
    checkpoints: Iterable[Checkpoint],
    public_raw: bytes,
    anchor: Checkpoint | None = None,
) -> AuditReport:
    """Walk the whole log (oldest first, streaming) and report every inconsistency."""
    report = AuditReport()
    public = Ed25519PublicKey.from_public_bytes(public_raw)
    kid = key_id(public_raw)
    cps: dict[int, Checkpoint] = {}
    prev_cp_seq = 0
    for cp in sorted(checkpoints, key=lambda c: c.seq):
        if not checkpoint_valid(cp, public, kid):
            report.problems.append(f"checkpoint at entry {cp.seq}: signature invalid (forged)")
            continue
        if cp.prev_checkpoint_seq != prev_cp_seq:
            report.problems.append(
                f"checkpoint at entry {cp.seq} follows checkpoint {cp.prev_checkpoint_seq}, "
                f"but the previous one found is {prev_cp_seq}: a checkpoint was deleted"
            )
        prev_cp_seq = cp.seq
        cps[cp.seq] = cp
    report.checkpoints = len(cps)
    if anchor is not None:
        if not checkpoint_valid(anchor, public, kid):
            report.problems.append("the anchor checkpoint's signature is invalid")
        elif cps.get(anchor.seq) != anchor:
            report.problems.append(
                f"the anchor checkpoint at entry {anchor.seq} is no longer in the log: "
                "the log was cut or rewritten"
            )
        else:
            cps[anchor.seq] = anchor
    prev_hash = GENESIS_HASH
    expected = 1
    for entry in entries:
        report.entries += 1
        if entry.seq != expected:
            if entry.seq > expected:
                report.problems.append(f"entries {expected}..{entry.seq - 1} are missing (deleted)")
            else:
                report.problems.append(f"entry {entry.seq} is out of order (after {expected - 1})")
        if entry.prev_hash != prev_hash:
            report.problems.append(
                f"entry {entry.seq} does not link to the entry before it "
                "(an earlier entry was deleted, reordered or edited)"
            )
        if rehash(entry) != entry.hash:
            report.problems.append(f"entry {entry.seq} was edited (its hash does not match)")
        signed = cps.get(entry.seq)
        if signed is not None:
            if signed.hash == entry.hash:
                report.covered_seq = entry.seq
            else:
                report.problems.append(
                    f"entry {entry.seq} differs from its signed checkpoint: "
                    "the log was rewritten up to here"
                )
        prev_hash = entry.hash
        expected = max(expected, entry.seq) + 1
        report.last_seq = max(report.last_seq, entry.seq)
    beyond = [s for s in cps if s > report.last_seq]
    if beyond:
        report.problems.append(
            f"a signed checkpoint covers entry {max(beyond)} but the log ends at "
            f"{report.last_seq}: entries were deleted from the end"
        )
    return report
