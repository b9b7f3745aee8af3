"""The buffer's exception tree, in one place.

    StoreError            bad input (unknown id, reversed range, path outside the buffer, ...)
    └── DiskFullError     the disk (or a quota of the filesystem) ran out while committing

Every message names the camera and/or the file concerned, so an operator reading one log line
knows what was affected. Third-party errors (OSError, sqlite3.Error) are translated once, at the
boundary where they happen, with `raise ... from exc`.
"""

from __future__ import annotations

import errno
import sqlite3

_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class StoreError(Exception):
    """The buffer refused a request or could not carry it out; nothing was changed."""


class DiskFullError(StoreError):
    """No space left (ENOSPC/EDQUOT) while committing a segment; that segment was dropped."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether an OSError or an SQLite error means the disk is full."""
    if isinstance(exc, OSError):
        return exc.errno in _DISK_FULL_ERRNOS
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code == sqlite3.SQLITE_FULL or "disk is full" in str(exc)
    return False
