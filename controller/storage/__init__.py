"""Object storage for segment bytes: one small `ObjectStore` interface, two backends.

`LocalObjectStore` (a directory, the zero-set-up default) and `S3ObjectStore` (any S3 API
store); `open_store(url)` picks one from configuration. Keys come from `object_key`.
"""

from controller.storage.base import (
    InvalidKeyError,
    ObjectInfo,
    ObjectNotFoundError,
    ObjectStore,
    StorageError,
    check_key,
    content_type_for,
    object_key,
)
from controller.storage.factory import (
    LocalSpec,
    S3Spec,
    open_store,
    parse_store_url,
    redact_store_url,
)
from controller.storage.local import LocalObjectStore
from controller.storage.s3 import S3ObjectStore

__all__ = [
    "InvalidKeyError",
    "LocalObjectStore",
    "LocalSpec",
    "ObjectInfo",
    "ObjectNotFoundError",
    "ObjectStore",
    "S3ObjectStore",
    "S3Spec",
    "StorageError",
    "check_key",
    "content_type_for",
    "object_key",
    "open_store",
    "parse_store_url",
    "redact_store_url",
]
