"""The default object store: a local directory, zero set-up.

Writes are crash-safe the POSIX way: copy into a hidden temp file in the target directory,
fsync, rename over the final name, fsync the directory. The rename is the commit point, so a
reader (or a crash) sees the whole object or nothing new. The SHA-256 travels in a hidden
sidecar (`.{name}.sha256`) written before the object is renamed into place; keys can never
start a component with '.', so temp and sidecar files are outside the key space and
`list_keys` skips them. Empty hour directories are pruned on delete so a month of retention
does not leave millions of empty directories behind.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from controller.storage.base import (
    ObjectInfo,
    ObjectNotFoundError,
    StorageError,
    check_key,
    check_prefix,
    check_sha256_hex,
)

_COPY_CHUNK = 1024 * 1024
_MKDIR_ATTEMPTS = 5  # a concurrent delete may prune the directory we just created


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sidecar(path: Path) -> Path:
    return path.with_name(f".{path.name}.sha256")


class LocalObjectStore:
    """Objects as files under `root` (created if missing)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def put_file(self, key: str, path: Path, sha256_hex: str) -> None:
        target = self._path(key)
        check_sha256_hex(sha256_hex)
        try:
            with open(path, "rb") as src:
                self._write_atomically(target, src, sha256_hex)
        except StorageError:
            raise
        except OSError as exc:
            raise StorageError(f"put {key}: {exc.strerror or exc}") from exc

    def _write_atomically(self, target: Path, src: BinaryIO, sha256_hex: str) -> None:
        for attempt in range(_MKDIR_ATTEMPTS):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
                break
            except FileNotFoundError:
                if attempt == _MKDIR_ATTEMPTS - 1:
                    raise
        tmp = Path(tmp_name)
        meta_tmp = tmp.with_name(tmp.name + ".sha256")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := src.read(_COPY_CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            with open(meta_tmp, "w", encoding="ascii") as meta:
                meta.write(sha256_hex)
                meta.flush()
                os.fsync(meta.fileno())
            os.replace(meta_tmp, _sidecar(target))
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            meta_tmp.unlink(missing_ok=True)
            raise

    def open_read(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")  # noqa: SIM115 - the caller closes it
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ObjectNotFoundError(f"open {key}: no such object") from exc
        except IsADirectoryError as exc:
            raise ObjectNotFoundError(f"open {key}: no such object (a prefix)") from exc
        except OSError as exc:
            raise StorageError(f"open {key}: {exc.strerror or exc}") from exc

    def read_bytes(self, key: str) -> bytes:
        with self.open_read(key) as f:
            try:
                return f.read()
            except OSError as exc:
                raise StorageError(f"read {key}: {exc.strerror or exc}") from exc

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StorageError(f"stat {key}: {exc.strerror or exc}") from exc
        if not path.is_file():
            return None
        try:
            sha: str | None = _sidecar(path).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            sha = None
        except OSError as exc:
            raise StorageError(f"stat {key}: {exc.strerror or exc}") from exc
        return ObjectInfo(key=key, size=st.st_size, sha256_hex=sha)

    def size(self, key: str) -> int | None:
        info = self.head(key)
        return None if info is None else info.size

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
            _sidecar(path).unlink(missing_ok=True)
        except (NotADirectoryError, IsADirectoryError):
            return
        except OSError as exc:
            raise StorageError(f"delete {key}: {exc.strerror or exc}") from exc
        self._prune_empty_dirs(path.parent)

    def _prune_empty_dirs(self, directory: Path) -> None:
        """Remove now-empty parents up to (not including) the root; races are harmless."""
        root = self.root.resolve()
        current = directory
        while current.resolve() != root and root in current.resolve().parents:
            try:
                current.rmdir()
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT, errno.EBUSY):
                    return
                raise StorageError(f"prune {current}: {exc.strerror or exc}") from exc
            current = current.parent

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        head, _, _ = prefix.rpartition("/")
        start = self.root.joinpath(*head.split("/")) if head else self.root
        base = f"{head}/" if head else ""
        try:
            yield from (k for k in self._walk(start, base) if k.startswith(prefix))
        except OSError as exc:
            raise StorageError(f"list {prefix!r}: {exc.strerror or exc}") from exc

    def _walk(self, directory: Path, base: str) -> Iterator[str]:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), f"{base}{entry.name}/")
            elif entry.is_file(follow_symlinks=False):
                yield f"{base}{entry.name}"

    def presigned_get(self, key: str, expires_s: int) -> str | None:
        """The local backend has no URLs of its own: playback serves the bytes itself."""
        check_key(key)
        return None
