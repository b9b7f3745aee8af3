from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SegmentFlag(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEGMENT_FLAG_NONE: _ClassVar[SegmentFlag]
    SEGMENT_FLAG_DISCONTINUITY: _ClassVar[SegmentFlag]
    SEGMENT_FLAG_TRUNCATED: _ClassVar[SegmentFlag]
    SEGMENT_FLAG_CLOCK_SKEW: _ClassVar[SegmentFlag]
SEGMENT_FLAG_NONE: SegmentFlag
SEGMENT_FLAG_DISCONTINUITY: SegmentFlag
SEGMENT_FLAG_TRUNCATED: SegmentFlag
SEGMENT_FLAG_CLOCK_SKEW: SegmentFlag

class SegmentHeader(_message.Message):
    __slots__ = ("segment_id", "camera_id", "start_unix_us", "duration_us", "size_bytes", "sha256", "prev_sha256", "lease_id", "offset", "container", "flags")
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    START_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    DURATION_US_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    PREV_SHA256_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    segment_id: str
    camera_id: str
    start_unix_us: int
    duration_us: int
    size_bytes: int
    sha256: bytes
    prev_sha256: bytes
    lease_id: str
    offset: int
    container: str
    flags: int
    def __init__(self, segment_id: _Optional[str] = ..., camera_id: _Optional[str] = ..., start_unix_us: _Optional[int] = ..., duration_us: _Optional[int] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[bytes] = ..., prev_sha256: _Optional[bytes] = ..., lease_id: _Optional[str] = ..., offset: _Optional[int] = ..., container: _Optional[str] = ..., flags: _Optional[int] = ...) -> None: ...

class UploadRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: SegmentHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[SegmentHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadResponse(_message.Message):
    __slots__ = ("segment_id", "outcome", "sha256", "chain_ok", "object_key")
    class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OUTCOME_UNSPECIFIED: _ClassVar[UploadResponse.Outcome]
        OUTCOME_COMMITTED: _ClassVar[UploadResponse.Outcome]
        OUTCOME_ALREADY_COMMITTED: _ClassVar[UploadResponse.Outcome]
        OUTCOME_ACCEPTED: _ClassVar[UploadResponse.Outcome]
    OUTCOME_UNSPECIFIED: UploadResponse.Outcome
    OUTCOME_COMMITTED: UploadResponse.Outcome
    OUTCOME_ALREADY_COMMITTED: UploadResponse.Outcome
    OUTCOME_ACCEPTED: UploadResponse.Outcome
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CHAIN_OK_FIELD_NUMBER: _ClassVar[int]
    OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    segment_id: str
    outcome: UploadResponse.Outcome
    sha256: bytes
    chain_ok: bool
    object_key: str
    def __init__(self, segment_id: _Optional[str] = ..., outcome: _Optional[_Union[UploadResponse.Outcome, str]] = ..., sha256: _Optional[bytes] = ..., chain_ok: _Optional[bool] = ..., object_key: _Optional[str] = ...) -> None: ...

class QueryOffsetRequest(_message.Message):
    __slots__ = ("segment_id", "camera_id")
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    segment_id: str
    camera_id: str
    def __init__(self, segment_id: _Optional[str] = ..., camera_id: _Optional[str] = ...) -> None: ...

class QueryOffsetResponse(_message.Message):
    __slots__ = ("offset", "committed", "sha256")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    offset: int
    committed: bool
    sha256: bytes
    def __init__(self, offset: _Optional[int] = ..., committed: _Optional[bool] = ..., sha256: _Optional[bytes] = ...) -> None: ...
