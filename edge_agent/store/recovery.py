"""What to repair when the buffer opens after a crash: a pure comparison of index and disk.

The commit protocol (write temp, fsync, rename, fsync dir, then insert the index row) means a
kill -9 can leave only:

* temp files under tmp/ — never committed, deleted;
* a segment file without an index row (killed between rename and insert) — never acknowledged
  to the caller, so deleted: keeping it would surface data nobody accounted for;
* an index row without its file, or with a file of the wrong size — impossible by the protocol,
  but possible after disk damage or a hand-deleted file. The row is dropped and recorded as an
  eviction with a reason, so the loss is reported, never silent; a damaged file is moved to
  quarantine/ for a human to look at rather than deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RecoveryPlan:
    delete_files: tuple[str, ...]  # on disk, not indexed
    missing_rows: tuple[str, ...]  # indexed, file absent
    damaged_rows: tuple[str, ...]  # indexed, file present with another size (quarantined)


def plan_recovery(indexed: Mapping[str, int], on_disk: Mapping[str, int]) -> RecoveryPlan:
    """Compare {filename: size} of the index with {filename: size} found on disk."""
    delete_files = sorted(name for name in on_disk if name not in indexed)
    missing = sorted(name for name in indexed if name not in on_disk)
    damaged = sorted(
        name for name, size in indexed.items() if name in on_disk and on_disk[name] != size
    )
    return RecoveryPlan(
        delete_files=tuple(delete_files),
        missing_rows=tuple(missing),
        damaged_rows=tuple(damaged),
    )
