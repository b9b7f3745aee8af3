"""Does the S3 store verify `x-amz-checksum-sha256`? Asked once, with one byte.

Ingest's single-PUT path (stream.py) relies on the store to check each segment against the
SHA-256 its agent declared. SeaweedFS, AWS, MinIO since its late-2022 releases and Ceph RGW
with its checksum support refuse a mismatch (`BadDigest`); an older store accepts the header
and ignores it, and would keep wrong bytes. So the controller PUTs one byte with a wrong
checksum the first time it needs to know: refused, the store checks; kept, it does not (the
object is deleted and the controller then hashes such segments itself).
"""

from __future__ import annotations

import hashlib
import logging
import uuid

from controller.storage.base import ChecksumMismatchError, StreamingStore

log = logging.getLogger("vigil.ingest")


def store_refuses_bad_checksums(store: StreamingStore) -> bool:
    """True when the store refused a byte sent with a wrong SHA-256; StorageError when it
    could not be asked (down: ask again next time)."""
    key = f"vigil-checksum-probe/{uuid.uuid4().hex}.bin"
    writer = store.open_put(key, 1, hashlib.sha256(b"not x").hexdigest())
    try:
        writer.write(b"x")
        writer.finish()
    except ChecksumMismatchError:
        return True
    finally:
        writer.abort()
    log.warning(
        "the object store ignores x-amz-checksum-sha256 (it kept bytes that do not match "
        "it): the controller verifies every segment itself"
    )
    store.delete(key)
    return False
