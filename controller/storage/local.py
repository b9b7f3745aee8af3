"""The default object store: a local directory, zero set-up.

Writes are crash-safe the POSIX way: the bytes are fsynced under a hidden temp name in the
target directory, renamed over the final name, and the directory is fsynced. The rename is
the commit point, so a reader (or a crash) sees the whole object or nothing new. Directories
created on the way are fsynced into their parents too, or a power cut could lose a new hour
directory together with every object in it.

Two ways in:

- `put_file` copies the source (the caller keeps it). The SHA-256 travels in a hidden
  sidecar (`.{name}.sha256`), itself written durably before the object is renamed in.
- `adopt_file` takes over a finished file that the caller will not modify again (a verified
  upload in the staging directory, on the same filesystem): one fsync of the file, a hard
  link under the temp name, the rename, one fsync of the directory. No byte is copied. The
  SHA-256 is an extended attribute (`user.vigil.sha256`) of the inode, set before that one
  fsync, so it is as durable as the bytes without a second file and its two fsyncs; where
  the filesystem has no user xattrs the durable sidecar is written instead, and a source on
  another filesystem is copied as `put_file` does. The catalog keeps the hash as well; the
  store's copy is what `head` answers and what a scrub can check objects against.

Keys can never start a component with '.', so temp and sidecar files are outside the key
space and `list_keys` skips them. Empty hour directories are pruned on delete so a month of
retention does not leave millions of empty directories behind.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from controller.storage.base import (
    ObjectInfo,
    ObjectNotFoundError,
    StorageError,
    StoredObject,
    check_key,
    check_prefix,
    check_sha256_hex,
)

_COPY_CHUNK = 1024 * 1024
_MKDIR_ATTEMPTS = 5  # a concurrent delete may prune the directory we just created
_SHA_XATTR = "user.vigil.sha256"
# A filesystem (or a mount) that cannot hold a user xattr: use the sidecar instead.
_NO_XATTR = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.ENOSPC, errno.E2BIG})
# A hard link into the store is impossible (another filesystem, or links refused): copy.
_NO_LINK = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP})


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sidecar(path: Path) -> Path:
    return path.with_name(f".{path.name}.sha256")


def _make_dirs(directory: Path) -> None:
    """`mkdir -p`, with each new directory fsynced into its parent (durable creation)."""
    missing: list[Path] = []
    current = directory
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for new in reversed(missing):
        try:
            new.mkdir()
        except FileExistsError:
            continue  # a concurrent writer made it; it fsyncs it too
        _fsync_dir(new.parent)


def _write_sidecar(target: Path, sha256_hex: str) -> None:
    """The hash next to the object, durable before the object is renamed into place."""
    meta_tmp = target.with_name(f".tmp-{secrets.token_hex(8)}.sha256")
    try:
        with open(meta_tmp, "w", encoding="ascii") as meta:
            meta.write(sha256_hex)
            meta.flush()
            os.fsync(meta.fileno())
        os.replace(meta_tmp, _sidecar(target))
    except BaseException:
        meta_tmp.unlink(missing_ok=True)
        raise


def _tag(fd: int, sha256_hex: str) -> bool:
    """Set the hash xattr on an open file; False when the filesystem cannot hold it."""
    try:
        os.setxattr(fd, _SHA_XATTR, sha256_hex.encode("ascii"))
    except OSError as exc:
        if exc.errno in _NO_XATTR:
            return False
        raise
    return True


def _tagged_sha(path: Path) -> str | None:
    """The hash xattr of an object, or None when it has none (written by `put_file`)."""
    try:
        raw = os.getxattr(path, _SHA_XATTR)
    except OSError as exc:
        if exc.errno == errno.ENODATA or exc.errno in _NO_XATTR:
            return None
        raise
    try:
        return check_sha256_hex(raw.decode("ascii"))
    except (UnicodeDecodeError, StorageError):
        return None  # not ours: fall back to the sidecar


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
            _make_dirs(target.parent)
            try:
                fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
                break
            except FileNotFoundError:
                if attempt == _MKDIR_ATTEMPTS - 1:
                    raise
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := src.read(_COPY_CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            _write_sidecar(target, sha256_hex)
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def adopt_file(self, key: str, path: Path, sha256_hex: str) -> None:
        """`put_file` without the copy, for a file the caller hands over (module docstring)."""
        target = self._path(key)
        check_sha256_hex(sha256_hex)
        try:
            if not self._link_in(target, Path(path), sha256_hex):
                self.put_file(key, path, sha256_hex)
        except StorageError:
            raise
        except OSError as exc:
            raise StorageError(f"adopt {key}: {exc.strerror or exc}") from exc

    def _link_in(self, target: Path, source: Path, sha256_hex: str) -> bool:
        """Tag, fsync and hard-link `source` to `target`; False if it cannot be linked."""
        fd = os.open(source, os.O_RDONLY)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StorageError(f"adopt {source.name}: not a regular file")
            tagged = _tag(fd, sha256_hex)
            os.fsync(fd)  # the bytes and the xattr, in one go
        finally:
            os.close(fd)
        tmp = target.with_name(f".tmp-{secrets.token_hex(8)}")
        for attempt in range(_MKDIR_ATTEMPTS):
            try:
                os.link(source, tmp)
                break
            except FileNotFoundError:
                if attempt == _MKDIR_ATTEMPTS - 1 or not source.exists():
                    raise
                _make_dirs(target.parent)  # first object of the hour, or a prune raced us
            except OSError as exc:
                if exc.errno in _NO_LINK:
                    return False
                raise
        try:
            if not tagged:
                _write_sidecar(target, sha256_hex)
            os.replace(tmp, target)
            if tagged:  # a sidecar left by a `put_file` of the object this one replaced
                _sidecar(target).unlink(missing_ok=True)
            _fsync_dir(target.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return True

    def open_read(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")  # the caller closes it
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
        if not stat.S_ISREG(st.st_mode):
            return None
        try:
            sha = _tagged_sha(path)
            if sha is None:
                sha = _sidecar(path).read_text(encoding="ascii").strip() or None
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

    def list_objects(self, prefix: str = "") -> Iterator[StoredObject]:
        for key in self.list_keys(prefix):
            try:
                st = os.stat(self.root.joinpath(*key.split("/")))
            except FileNotFoundError:
                continue  # deleted since it was listed
            except OSError as exc:
                raise StorageError(f"list {key}: {exc.strerror or exc}") from exc
            yield StoredObject(key, st.st_size, st.st_mtime_ns // 1000)

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
