"""Recording folders (an NVR's recordings, a handheld terminal's clip drop): which files are
complete, and which were already taken, remembered across restarts.

A file is complete when its size and mtime have not changed for `settle_s` seconds: NVRs and
phones give no other signal, and a file still being written must not be cut short. `observe`
and `ready` decide that from plain listings (pure, unit tested); `scan_folder` and
`FolderLedger` are the small I/O adapters.

The ledger records each file handled, with the size and mtime it had, as "done" or "rejected"
(corrupt, not H.264/H.265), so a restart does not ingest a file twice or retry a refused one; a file
that changes afterwards is looked at again (the capture worker resumes after what the buffer
already holds, so that never duplicates video).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from edge_agent.sources.recording import VIDEO_SUFFIXES, FileFacts

log = logging.getLogger(__name__)

_MAX_DEPTH = 4  # NVRs nest recordings by date/channel; deeper trees are not recordings
_MAX_ENTRIES = 100_000  # a runaway folder must not grow the ledger without bound


@dataclass(frozen=True, slots=True)
class Seen:
    """A file as last listed, and since when (monotonic seconds) it has looked like this."""

    size: int
    mtime_ns: int
    since: float


def observe(
    prev: Mapping[str, Seen], listing: Mapping[str, FileFacts], now: float
) -> dict[str, Seen]:
    """Fold a fresh listing into what was seen: unchanged files keep their `since`."""
    out: dict[str, Seen] = {}
    for name, facts in listing.items():
        old = prev.get(name)
        if old is not None and old.size == facts.size and old.mtime_ns == facts.mtime_ns:
            out[name] = old
        else:
            out[name] = Seen(facts.size, facts.mtime_ns, now)
    return out


def ready(
    seen: Mapping[str, Seen], handled: Mapping[str, FileFacts], settle_s: float, now: float
) -> list[str]:
    """Files unchanged for `settle_s` and not handled in this exact form, oldest first."""
    out = []
    for name, s in seen.items():
        if now - s.since < settle_s:
            continue
        done = handled.get(name)
        if done is not None and done.size == s.size and done.mtime_ns == s.mtime_ns:
            continue
        out.append(name)
    return sorted(out, key=lambda n: (seen[n].mtime_ns, n))


def scan_folder(root: Path) -> dict[str, FileFacts]:
    """Video files below `root` (relative POSIX names), skipping hidden files and folders.

    Raises OSError if `root` itself cannot be listed; unreadable subfolders are skipped.
    """
    out: dict[str, FileFacts] = {}
    stack: list[tuple[Path, int]] = [(root, 0)]
    first = True
    while stack:
        folder, depth = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            if first:
                raise
            continue
        first = False
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if depth < _MAX_DEPTH:
                        stack.append((Path(entry.path), depth + 1))
                    continue
                if not entry.is_file() or Path(entry.name).suffix.lower() not in VIDEO_SUFFIXES:
                    continue
                st = entry.stat()
            except OSError:
                continue  # vanished between listing and stat: the next scan sees the truth
            rel = Path(entry.path).relative_to(root).as_posix()
            out[rel] = FileFacts(st.st_size, st.st_mtime_ns)
    return out


class FolderLedger:
    """The durable list of files of one camera's folder already handled (a small JSON file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Where the camera's recorded timeline ends (recordings can be older than anything the
        # buffer is asked about at start-up, so the ledger remembers it for the next file).
        self.covered_until_us: int | None = None
        self._entries: dict[str, dict[str, object]] = self._load()

    def _load(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("ledger %s is unreadable (%s); starting afresh", self.path, exc)
            return {}
        entries = data.get("files") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            log.error("ledger %s has no 'files' table; starting afresh", self.path)
            return {}
        covered = data.get("covered_until_us")
        self.covered_until_us = covered if isinstance(covered, int) else None
        return {str(k): v for k, v in entries.items() if isinstance(v, dict)}

    def handled(self) -> dict[str, FileFacts]:
        out = {}
        for name, entry in self._entries.items():
            size, mtime = entry.get("size"), entry.get("mtime_ns")
            if isinstance(size, int) and isinstance(mtime, int):
                out[name] = FileFacts(size, mtime)
        return out

    def outcome(self, name: str) -> str | None:
        entry = self._entries.get(name)
        value = entry.get("outcome") if entry else None
        return value if isinstance(value, str) else None

    def mark(
        self,
        name: str,
        facts: FileFacts,
        outcome: str,
        detail: str = "",
        covered_until_us: int | None = None,
    ) -> None:
        """Record a file as handled ("done" or "rejected") and write the ledger durably."""
        if covered_until_us is not None:
            self.covered_until_us = max(self.covered_until_us or 0, covered_until_us)
        self._entries[name] = {
            "size": facts.size,
            "mtime_ns": facts.mtime_ns,
            "outcome": outcome,
            "detail": detail[:500],
        }
        if len(self._entries) > _MAX_ENTRIES:
            for old in sorted(self._entries, key=self._mtime_of)[
                : len(self._entries) - _MAX_ENTRIES
            ]:
                del self._entries[old]
        self._save()

    def forget_missing(self, present: Iterable[str]) -> None:
        """Drop entries of files no longer in the folder (the NVR rotated them away)."""
        keep = set(present)
        gone = [name for name in self._entries if name not in keep]
        if gone:
            for name in gone:
                del self._entries[name]
            self._save()

    def _mtime_of(self, name: str) -> int:
        value = self._entries[name].get("mtime_ns")
        return value if isinstance(value, int) else 0

    def _save(self) -> None:
        """Write to a temp file, fsync, rename: a crash leaves the old or the new ledger."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        payload = json.dumps(
            {"version": 1, "covered_until_us": self.covered_until_us, "files": self._entries},
            sort_keys=True,
        )
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
