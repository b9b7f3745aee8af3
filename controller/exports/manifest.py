"""The evidence manifest of an export and its verification (pure: bytes and digests in).

An export is the segments plus `manifest.json` (camera, times, grant, watermark, and every
segment's file name, size, SHA-256 and the recorder's previous-segment hash, folded into a
running SHA-256 chain) and `manifest.sig` (Ed25519 by the controller's evidence key over the
exact manifest bytes). A third party needs only the public key: the signature fixes the list
and its order; each file's hash then shows whether it was altered, is missing, or holds
another entry's content (reordered). The recorder's own chain (`prev_sha256`) is reported too:
a break there means footage missing at the source, which the export states rather than hides.
Each entry also lists the segment's media as the catalog probed it at ingest (video codec,
profile, size, frame rate; audio codec, sample rate, channels; `{}` when unknown), so a
recipient knows what player the footage needs before opening it.
The manifest also carries the audit log's newest signed checkpoint at export time
(`audit_checkpoint`, see controller/audit/witness.py): every recipient holds a witness, so
the controller's audit log can later be shown to still contain it (`verify-audit --witness`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from controller.grants.codec import key_id, raw_public_key

FORMAT = "vigil-export/1"
EXPORT_DOMAIN = b"vigil.v1.ExportManifest\x00"
CHAIN_SEED = b"vigil-export-chain/1"
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
SEGMENT_DIR = "segments/"


class ExportSegment(Protocol):
    """What an export needs of a segment; the catalog's `SegmentRow` fits as is."""

    @property
    def segment_id(self) -> str: ...

    @property
    def start_us(self) -> int: ...

    @property
    def end_us(self) -> int: ...

    @property
    def size_bytes(self) -> int: ...

    @property
    def sha256(self) -> str: ...

    @property
    def prev_sha256(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ExportInfo:
    """Who exported what, under which grant: the manifest's header."""

    export_id: str
    camera_id: str
    camera_area: str
    from_us: int
    to_us: int
    grant_id: str
    grant_chain: tuple[str, ...]
    watermark_id: str
    case_id: str
    purpose: str
    requested_by: str
    organisation: str
    created_at_us: int
    # The audit witness (controller.audit.witness.witness_dict); None: no checkpoint yet.
    audit_checkpoint: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class FileDigest:
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # signature, manifest, missing, altered, reordered, extra, source_gap
    file: str
    detail: str


@dataclass(slots=True)
class ExportReport:
    segments: int = 0
    verified: int = 0
    signature_ok: bool = False
    manifest: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Authentic and complete (a source gap is reported, but is not tampering)."""
        return self.signature_ok and all(p.kind == "source_gap" for p in self.problems)


def segment_file_name(index: int, segment_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in segment_id)[:96]
    return f"{SEGMENT_DIR}{index:06d}_{safe}.ts"


def chain_link(previous: str, sha256_hex: str) -> str:
    return hashlib.sha256(previous.encode("ascii") + b"\n" + sha256_hex.encode("ascii")).hexdigest()


MEDIA_FIELDS = (
    "video_codec",
    "video_profile",
    "width",
    "height",
    "frame_rate",
    "audio_codec",
    "audio_sample_rate",
    "audio_channels",
)


def media_facts(row: object) -> dict[str, object]:
    """The manifest's view of a catalog media row (`SegmentMediaRow` fits); {} when the
    probe failed (nothing known)."""
    if getattr(row, "probe_error", ""):
        return {}
    return {name: getattr(row, name) for name in MEDIA_FIELDS if hasattr(row, name)}


def build_manifest(
    info: ExportInfo,
    segments: Sequence[ExportSegment],
    signer_key_id: str,
    media: Mapping[str, Mapping[str, object]] | None = None,
) -> bytes:
    """The manifest bytes (canonical JSON, UTF-8) for `segments` in recorded order;
    `media` maps segment ids to their media facts (see `media_facts`)."""
    media = media or {}
    link = hashlib.sha256(CHAIN_SEED).hexdigest()
    entries = []
    for index, seg in enumerate(segments):
        link = chain_link(link, seg.sha256)
        entries.append(
            {
                "index": index,
                "file": segment_file_name(index, seg.segment_id),
                "segment_id": seg.segment_id,
                "start_us": seg.start_us,
                "end_us": seg.end_us,
                "size_bytes": seg.size_bytes,
                "sha256": seg.sha256,
                "prev_sha256": seg.prev_sha256,
                "chain": link,
                "media": dict(media.get(seg.segment_id, {})),
            }
        )
    doc = {
        "format": FORMAT,
        "export_id": info.export_id,
        "created_at_us": info.created_at_us,
        "camera_id": info.camera_id,
        "camera_area": info.camera_area,
        "from_us": info.from_us,
        "to_us": info.to_us,
        "grant_id": info.grant_id,
        "grant_chain": list(info.grant_chain),
        "watermark_id": info.watermark_id,
        "case_id": info.case_id,
        "purpose": info.purpose,
        "requested_by": info.requested_by,
        "organisation": info.organisation,
        "signing_key_id": signer_key_id,
        "segments": entries,
        "chain_head": link,
    }
    if info.audit_checkpoint is not None:
        doc["audit_checkpoint"] = dict(info.audit_checkpoint)
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8") + b"\n"


def sign_manifest(manifest: bytes, key: Ed25519PrivateKey) -> bytes:
    """The contents of manifest.sig: key id and hex signature, one line."""
    signature = key.sign(EXPORT_DOMAIN + manifest)
    return f"ed25519 {key_id(raw_public_key(key))} {signature.hex()}\n".encode("ascii")


def _check_signature(manifest: bytes, sig_file: bytes, public_raw: bytes) -> str | None:
    """None when the signature verifies with `public_raw`, else why not."""
    try:
        algo, kid, sig_hex = sig_file.decode("ascii").split()
        signature = bytes.fromhex(sig_hex)
    except (UnicodeDecodeError, ValueError):
        return "manifest.sig is malformed"
    if algo != "ed25519":
        return f"unsupported signature algorithm {algo[:20]!r}"
    if kid != key_id(public_raw):
        return f"signed by key {kid[:16]}, not by the key given ({key_id(public_raw)})"
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, EXPORT_DOMAIN + manifest)
    except (InvalidSignature, ValueError):
        return "the manifest signature does not verify: the manifest was altered or forged"
    return None


def _entries(doc: Any) -> list[dict[str, Any]] | str:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return f"not a {FORMAT} manifest"
    entries = doc.get("segments")
    if not isinstance(entries, list):
        return "manifest has no segment list"
    for entry in entries:
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) for k in ("file", "sha256", "prev_sha256", "chain")
        ):
            return "manifest has a malformed segment entry"
    return entries


def verify_export(
    manifest: bytes | None,
    sig_file: bytes | None,
    public_raw: bytes,
    files: Mapping[str, FileDigest],
    order: Sequence[str],
) -> ExportReport:
    """Check an export given its manifest, signature, and the digest of every file found in
    the archive (`order`: the segment files in archive order)."""
    report = ExportReport()
    if manifest is None or sig_file is None:
        missing = MANIFEST_NAME if manifest is None else SIGNATURE_NAME
        report.problems.append(Problem("manifest", missing, f"{missing} is missing"))
        return report
    why = _check_signature(manifest, sig_file, public_raw)
    report.signature_ok = why is None
    if why is not None:
        report.problems.append(Problem("signature", SIGNATURE_NAME, why))
    try:
        doc = json.loads(manifest)
    except (UnicodeDecodeError, ValueError):
        report.problems.append(Problem("manifest", MANIFEST_NAME, "manifest is not JSON"))
        return report
    entries = _entries(doc)
    if isinstance(entries, str):
        report.problems.append(Problem("manifest", MANIFEST_NAME, entries))
        return report
    report.manifest = {k: v for k, v in doc.items() if k != "segments"}
    report.segments = len(entries)
    by_hash = {e["sha256"]: e["file"] for e in entries}
    listed = {e["file"] for e in entries}
    link = hashlib.sha256(CHAIN_SEED).hexdigest()
    prev_sha: str | None = None
    for entry in entries:
        name = entry["file"]
        link = chain_link(link, entry["sha256"])
        if entry["chain"] != link:
            report.problems.append(Problem("manifest", name, "hash chain does not link here"))
        if prev_sha is not None and entry["prev_sha256"] != prev_sha:
            report.problems.append(
                Problem("source_gap", name, "recorder chain breaks here: footage missing at source")
            )
        prev_sha = entry["sha256"]
        found = files.get(name)
        if found is None:
            report.problems.append(Problem("missing", name, "segment file is missing"))
        elif found.sha256 == entry["sha256"] and found.size == entry.get("size_bytes"):
            report.verified += 1
        elif found.sha256 in by_hash:
            other = by_hash[found.sha256]
            report.problems.append(
                Problem("reordered", name, f"holds the content listed for {other}")
            )
        else:
            report.problems.append(Problem("altered", name, "content does not match its SHA-256"))
    if doc.get("chain_head") != link:
        report.problems.append(Problem("manifest", MANIFEST_NAME, "chain head does not match"))
    for name in sorted(set(files) - listed):
        report.problems.append(Problem("extra", name, "file is not listed in the manifest"))
    expected = [e["file"] for e in entries if e["file"] in files]
    actual = [n for n in order if n in listed and n in files]
    if actual != expected and not any(p.kind == "reordered" for p in report.problems):
        report.problems.append(
            Problem("reordered", SEGMENT_DIR, "segment files are out of manifest order")
        )
    return report
