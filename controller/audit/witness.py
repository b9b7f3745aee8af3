"""Audit checkpoints as witness statements (pure: bytes in, checkpoints out).

A signed checkpoint proves the chain up to its entry, but a cut of everything after the newest
checkpoint (rows *and* checkpoints deleted by someone with database access) leaves a shorter
log that verifies. The cure is a copy of a recent checkpoint outside the database: the
controller publishes every checkpoint, retained, on the MQTT witness topic (which only
controller accounts may write) and writes the latest one into every export manifest. Anyone
holding such a copy runs `verify-audit --witness F` (or `--witness-broker`), and a log that
no longer contains that exact checkpoint fails.

The witness payload is the checkpoint itself as canonical JSON; `parse_witness` also accepts
an anchor saved by `verify-audit --save-anchor` and an export's `manifest.json` (its
`audit_checkpoint`), and refuses anything else with a `WitnessError` naming what is wrong.
Authenticity is not judged here: `chain.verify_log` checks the signature with the evidence key.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from controller.audit.chain import Checkpoint

# Where the controller publishes each signed audit checkpoint, retained (the managed broker's
# ACL lets only controller accounts write it: controller/fleet/broker.py).
AUDIT_WITNESS_TOPIC = "vigil/v1/city/audit/checkpoint"
WITNESS_FORMAT = "vigil-audit-checkpoint/1"
MAX_WITNESS_BYTES = 16 * 1024 * 1024  # a checkpoint is ~400 bytes; a manifest lists segments
MANIFEST_KEY = "audit_checkpoint"
_INT_FIELDS = ("seq", "at_us", "prev_checkpoint_seq")
_HEX_FIELDS = {"hash": 64, "key_id": 64, "signature": 256}


class WitnessError(ValueError):
    """Not a usable witness checkpoint; the message says why."""


def witness_dict(cp: Checkpoint) -> dict[str, Any]:
    """The checkpoint as the JSON object published and written into manifests."""
    return {"format": WITNESS_FORMAT, **asdict(cp)}


def witness_payload(cp: Checkpoint) -> bytes:
    """Canonical JSON bytes of `witness_dict` (what the retained MQTT message carries)."""
    text = json.dumps(witness_dict(cp), sort_keys=True, separators=(",", ":"))
    return text.encode("ascii")


def checkpoint_from_dict(doc: Any) -> Checkpoint:
    """A Checkpoint from a witness/anchor object; every field is type- and size-checked."""
    if not isinstance(doc, dict):
        raise WitnessError("the witness is not a JSON object")
    fmt = doc.get("format", WITNESS_FORMAT)
    if fmt != WITNESS_FORMAT:
        raise WitnessError(f"unknown witness format {str(fmt)[:40]!r}")
    values: dict[str, Any] = {}
    for name in _INT_FIELDS:
        value = doc.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise WitnessError(f"the witness field {name!r} is missing or not a whole number")
        values[name] = value
    for name, limit in _HEX_FIELDS.items():
        value = doc.get(name)
        if not isinstance(value, str) or not value or len(value) > limit:
            raise WitnessError(f"the witness field {name!r} is missing or malformed")
        try:
            bytes.fromhex(value)
        except ValueError:
            raise WitnessError(f"the witness field {name!r} is not hexadecimal") from None
        values[name] = value
    if values["seq"] < 1:
        raise WitnessError("the witness checkpoint names no entry (seq < 1)")
    return Checkpoint(**values)


def parse_witness(data: bytes) -> Checkpoint:
    """The checkpoint in a witness payload, a saved anchor, or an export manifest."""
    if len(data) > MAX_WITNESS_BYTES:
        raise WitnessError(f"the witness is larger than {MAX_WITNESS_BYTES} bytes")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WitnessError("the witness is not JSON") from None
    if isinstance(doc, dict) and "segments" in doc and "format" in doc:
        cp = doc.get(MANIFEST_KEY)
        if cp is None:
            raise WitnessError("this export manifest carries no audit checkpoint (made earlier)")
        return checkpoint_from_dict(cp)
    return checkpoint_from_dict(doc)
