from protos.vigil.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeviceState(_message.Message):
    __slots__ = ("device_id", "online", "session", "at_unix_us", "reason")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    AT_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    online: bool
    session: int
    at_unix_us: int
    reason: str
    def __init__(self, device_id: _Optional[str] = ..., online: _Optional[bool] = ..., session: _Optional[int] = ..., at_unix_us: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class CameraDescription(_message.Message):
    __slots__ = ("camera_id", "kind", "url_redacted", "segment_seconds")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    URL_REDACTED_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    kind: str
    url_redacted: str
    segment_seconds: int
    def __init__(self, camera_id: _Optional[str] = ..., kind: _Optional[str] = ..., url_redacted: _Optional[str] = ..., segment_seconds: _Optional[int] = ...) -> None: ...

class Birth(_message.Message):
    __slots__ = ("device_id", "session", "agent_version", "kind", "cameras", "disk_total_bytes", "capabilities", "at_unix_us", "health_interval_s", "county", "site")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CAMERAS_FIELD_NUMBER: _ClassVar[int]
    DISK_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    AT_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    HEALTH_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    COUNTY_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    session: int
    agent_version: str
    kind: _common_pb2.DeviceKind
    cameras: _containers.RepeatedCompositeFieldContainer[CameraDescription]
    disk_total_bytes: int
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    at_unix_us: int
    health_interval_s: float
    county: str
    site: str
    def __init__(self, device_id: _Optional[str] = ..., session: _Optional[int] = ..., agent_version: _Optional[str] = ..., kind: _Optional[_Union[_common_pb2.DeviceKind, str]] = ..., cameras: _Optional[_Iterable[_Union[CameraDescription, _Mapping]]] = ..., disk_total_bytes: _Optional[int] = ..., capabilities: _Optional[_Iterable[str]] = ..., at_unix_us: _Optional[int] = ..., health_interval_s: _Optional[float] = ..., county: _Optional[str] = ..., site: _Optional[str] = ...) -> None: ...

class CameraHealth(_message.Message):
    __slots__ = ("camera_id", "connected", "frame_age_s", "fps", "bitrate_bps", "last_keyframe_unix_us", "gaps_last_hour", "state", "reason", "gop_s")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    FRAME_AGE_S_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    BITRATE_BPS_FIELD_NUMBER: _ClassVar[int]
    LAST_KEYFRAME_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    GAPS_LAST_HOUR_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    GOP_S_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    connected: bool
    frame_age_s: float
    fps: float
    bitrate_bps: int
    last_keyframe_unix_us: int
    gaps_last_hour: int
    state: str
    reason: str
    gop_s: float
    def __init__(self, camera_id: _Optional[str] = ..., connected: _Optional[bool] = ..., frame_age_s: _Optional[float] = ..., fps: _Optional[float] = ..., bitrate_bps: _Optional[int] = ..., last_keyframe_unix_us: _Optional[int] = ..., gaps_last_hour: _Optional[int] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ..., gop_s: _Optional[float] = ...) -> None: ...

class Health(_message.Message):
    __slots__ = ("device_id", "session", "seq", "at_unix_us", "cpu_pct", "mem_pct", "disk_free_bytes", "disk_total_bytes", "buffer_bytes", "segments_unsent", "segments_uploaded", "segments_held", "oldest_unsent_age_s", "eviction_eta_s", "cameras", "upload_rate_bps", "uptime_s", "clock_offset_known", "clock_offset_ms", "clock_offset_error_ms", "control_address", "upload_address", "controller_failovers")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    AT_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    CPU_PCT_FIELD_NUMBER: _ClassVar[int]
    MEM_PCT_FIELD_NUMBER: _ClassVar[int]
    DISK_FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISK_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    BUFFER_BYTES_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_UNSENT_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_UPLOADED_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_HELD_FIELD_NUMBER: _ClassVar[int]
    OLDEST_UNSENT_AGE_S_FIELD_NUMBER: _ClassVar[int]
    EVICTION_ETA_S_FIELD_NUMBER: _ClassVar[int]
    CAMERAS_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_RATE_BPS_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    CLOCK_OFFSET_KNOWN_FIELD_NUMBER: _ClassVar[int]
    CLOCK_OFFSET_MS_FIELD_NUMBER: _ClassVar[int]
    CLOCK_OFFSET_ERROR_MS_FIELD_NUMBER: _ClassVar[int]
    CONTROL_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CONTROLLER_FAILOVERS_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    session: int
    seq: int
    at_unix_us: int
    cpu_pct: float
    mem_pct: float
    disk_free_bytes: int
    disk_total_bytes: int
    buffer_bytes: int
    segments_unsent: int
    segments_uploaded: int
    segments_held: int
    oldest_unsent_age_s: float
    eviction_eta_s: float
    cameras: _containers.RepeatedCompositeFieldContainer[CameraHealth]
    upload_rate_bps: int
    uptime_s: float
    clock_offset_known: bool
    clock_offset_ms: float
    clock_offset_error_ms: float
    control_address: str
    upload_address: str
    controller_failovers: int
    def __init__(self, device_id: _Optional[str] = ..., session: _Optional[int] = ..., seq: _Optional[int] = ..., at_unix_us: _Optional[int] = ..., cpu_pct: _Optional[float] = ..., mem_pct: _Optional[float] = ..., disk_free_bytes: _Optional[int] = ..., disk_total_bytes: _Optional[int] = ..., buffer_bytes: _Optional[int] = ..., segments_unsent: _Optional[int] = ..., segments_uploaded: _Optional[int] = ..., segments_held: _Optional[int] = ..., oldest_unsent_age_s: _Optional[float] = ..., eviction_eta_s: _Optional[float] = ..., cameras: _Optional[_Iterable[_Union[CameraHealth, _Mapping]]] = ..., upload_rate_bps: _Optional[int] = ..., uptime_s: _Optional[float] = ..., clock_offset_known: _Optional[bool] = ..., clock_offset_ms: _Optional[float] = ..., clock_offset_error_ms: _Optional[float] = ..., control_address: _Optional[str] = ..., upload_address: _Optional[str] = ..., controller_failovers: _Optional[int] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("device_id", "session", "seq", "at_unix_us", "kind", "camera_id", "range", "bytes", "detail", "fact_id", "losses")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[Event.Kind]
        KIND_CAMERA_LOST: _ClassVar[Event.Kind]
        KIND_CAMERA_BACK: _ClassVar[Event.Kind]
        KIND_DISK_LOW: _ClassVar[Event.Kind]
        KIND_UNSENT_EVICTED: _ClassVar[Event.Kind]
        KIND_CHAIN_BREAK: _ClassVar[Event.Kind]
        KIND_CLOCK_SKEW: _ClassVar[Event.Kind]
        KIND_CERT_NEAR_EXPIRY: _ClassVar[Event.Kind]
        KIND_EVENTS_DROPPED: _ClassVar[Event.Kind]
        KIND_LONG_GOP: _ClassVar[Event.Kind]
        KIND_CODEC_CHANGED: _ClassVar[Event.Kind]
        KIND_AUDIO_CHANGED: _ClassVar[Event.Kind]
        KIND_AUDIO_LOST: _ClassVar[Event.Kind]
        KIND_FILE_REJECTED: _ClassVar[Event.Kind]
        KIND_IMAGE_FAULT: _ClassVar[Event.Kind]
        KIND_IMAGE_OK: _ClassVar[Event.Kind]
    KIND_UNSPECIFIED: Event.Kind
    KIND_CAMERA_LOST: Event.Kind
    KIND_CAMERA_BACK: Event.Kind
    KIND_DISK_LOW: Event.Kind
    KIND_UNSENT_EVICTED: Event.Kind
    KIND_CHAIN_BREAK: Event.Kind
    KIND_CLOCK_SKEW: Event.Kind
    KIND_CERT_NEAR_EXPIRY: Event.Kind
    KIND_EVENTS_DROPPED: Event.Kind
    KIND_LONG_GOP: Event.Kind
    KIND_CODEC_CHANGED: Event.Kind
    KIND_AUDIO_CHANGED: Event.Kind
    KIND_AUDIO_LOST: Event.Kind
    KIND_FILE_REJECTED: Event.Kind
    KIND_IMAGE_FAULT: Event.Kind
    KIND_IMAGE_OK: Event.Kind
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    AT_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    FACT_ID_FIELD_NUMBER: _ClassVar[int]
    LOSSES_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    session: int
    seq: int
    at_unix_us: int
    kind: Event.Kind
    camera_id: str
    range: _common_pb2.TimeRange
    bytes: int
    detail: str
    fact_id: str
    losses: _containers.RepeatedCompositeFieldContainer[LossFact]
    def __init__(self, device_id: _Optional[str] = ..., session: _Optional[int] = ..., seq: _Optional[int] = ..., at_unix_us: _Optional[int] = ..., kind: _Optional[_Union[Event.Kind, str]] = ..., camera_id: _Optional[str] = ..., range: _Optional[_Union[_common_pb2.TimeRange, _Mapping]] = ..., bytes: _Optional[int] = ..., detail: _Optional[str] = ..., fact_id: _Optional[str] = ..., losses: _Optional[_Iterable[_Union[LossFact, _Mapping]]] = ...) -> None: ...

class LossFact(_message.Message):
    __slots__ = ("fact_id", "camera_id", "range", "bytes", "at_unix_us")
    FACT_ID_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    AT_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    fact_id: str
    camera_id: str
    range: _common_pb2.TimeRange
    bytes: int
    at_unix_us: int
    def __init__(self, fact_id: _Optional[str] = ..., camera_id: _Optional[str] = ..., range: _Optional[_Union[_common_pb2.TimeRange, _Mapping]] = ..., bytes: _Optional[int] = ..., at_unix_us: _Optional[int] = ...) -> None: ...

class Command(_message.Message):
    __slots__ = ("verb", "camera_id", "range", "case_id", "config_toml", "traffic_class", "deadline_unix_us", "hold_id", "fact_ids")
    VERB_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_TOML_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_CLASS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    FACT_IDS_FIELD_NUMBER: _ClassVar[int]
    verb: str
    camera_id: str
    range: _common_pb2.TimeRange
    case_id: str
    config_toml: str
    traffic_class: _common_pb2.TrafficClass
    deadline_unix_us: int
    hold_id: str
    fact_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, verb: _Optional[str] = ..., camera_id: _Optional[str] = ..., range: _Optional[_Union[_common_pb2.TimeRange, _Mapping]] = ..., case_id: _Optional[str] = ..., config_toml: _Optional[str] = ..., traffic_class: _Optional[_Union[_common_pb2.TrafficClass, str]] = ..., deadline_unix_us: _Optional[int] = ..., hold_id: _Optional[str] = ..., fact_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CommandAck(_message.Message):
    __slots__ = ("device_id", "verb", "ok", "error", "at_unix_us", "result")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    VERB_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    AT_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    verb: str
    ok: bool
    error: str
    at_unix_us: int
    result: str
    def __init__(self, device_id: _Optional[str] = ..., verb: _Optional[str] = ..., ok: _Optional[bool] = ..., error: _Optional[str] = ..., at_unix_us: _Optional[int] = ..., result: _Optional[str] = ...) -> None: ...
