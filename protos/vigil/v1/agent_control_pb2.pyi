from protos.vigil.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EnrollRequest(_message.Message):
    __slots__ = ("device_id", "token", "csr_pem")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    token: str
    csr_pem: bytes
    def __init__(self, device_id: _Optional[str] = ..., token: _Optional[str] = ..., csr_pem: _Optional[bytes] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("certificate_pem", "ca_certificate_pem", "config", "mqtt_username", "mqtt_password", "renew_after_unix_us")
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    MQTT_USERNAME_FIELD_NUMBER: _ClassVar[int]
    MQTT_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    RENEW_AFTER_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    certificate_pem: bytes
    ca_certificate_pem: bytes
    config: AgentConfig
    mqtt_username: str
    mqtt_password: str
    renew_after_unix_us: int
    def __init__(self, certificate_pem: _Optional[bytes] = ..., ca_certificate_pem: _Optional[bytes] = ..., config: _Optional[_Union[AgentConfig, _Mapping]] = ..., mqtt_username: _Optional[str] = ..., mqtt_password: _Optional[str] = ..., renew_after_unix_us: _Optional[int] = ...) -> None: ...

class BacklogEntry(_message.Message):
    __slots__ = ("camera_id", "traffic_class", "bytes", "segments", "oldest_start_unix_us", "evict_at_unix_us")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_CLASS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    OLDEST_START_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    EVICT_AT_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    traffic_class: _common_pb2.TrafficClass
    bytes: int
    segments: int
    oldest_start_unix_us: int
    evict_at_unix_us: int
    def __init__(self, camera_id: _Optional[str] = ..., traffic_class: _Optional[_Union[_common_pb2.TrafficClass, str]] = ..., bytes: _Optional[int] = ..., segments: _Optional[int] = ..., oldest_start_unix_us: _Optional[int] = ..., evict_at_unix_us: _Optional[int] = ...) -> None: ...

class SegmentRef(_message.Message):
    __slots__ = ("segment_id", "camera_id", "start_unix_us", "size_bytes", "traffic_class", "duration_us")
    SEGMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    START_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_CLASS_FIELD_NUMBER: _ClassVar[int]
    DURATION_US_FIELD_NUMBER: _ClassVar[int]
    segment_id: str
    camera_id: str
    start_unix_us: int
    size_bytes: int
    traffic_class: _common_pb2.TrafficClass
    duration_us: int
    def __init__(self, segment_id: _Optional[str] = ..., camera_id: _Optional[str] = ..., start_unix_us: _Optional[int] = ..., size_bytes: _Optional[int] = ..., traffic_class: _Optional[_Union[_common_pb2.TrafficClass, str]] = ..., duration_us: _Optional[int] = ...) -> None: ...

class HoldSpec(_message.Message):
    __slots__ = ("hold_tag", "camera_id", "range", "traffic_class", "case_id")
    HOLD_TAG_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_CLASS_FIELD_NUMBER: _ClassVar[int]
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    hold_tag: str
    camera_id: str
    range: _common_pb2.TimeRange
    traffic_class: _common_pb2.TrafficClass
    case_id: str
    def __init__(self, hold_tag: _Optional[str] = ..., camera_id: _Optional[str] = ..., range: _Optional[_Union[_common_pb2.TimeRange, _Mapping]] = ..., traffic_class: _Optional[_Union[_common_pb2.TrafficClass, str]] = ..., case_id: _Optional[str] = ...) -> None: ...

class MissingRange(_message.Message):
    __slots__ = ("camera_id", "range", "reason")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    range: _common_pb2.TimeRange
    reason: str
    def __init__(self, camera_id: _Optional[str] = ..., range: _Optional[_Union[_common_pb2.TimeRange, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class HoldStatus(_message.Message):
    __slots__ = ("hold_tag", "camera_id", "range", "unsent_segments", "unsent_bytes", "recorded_until_unix_us", "missing", "unknown_camera")
    HOLD_TAG_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    UNSENT_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    UNSENT_BYTES_FIELD_NUMBER: _ClassVar[int]
    RECORDED_UNTIL_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_CAMERA_FIELD_NUMBER: _ClassVar[int]
    hold_tag: str
    camera_id: str
    range: _common_pb2.TimeRange
    unsent_segments: int
    unsent_bytes: int
    recorded_until_unix_us: int
    missing: _containers.RepeatedCompositeFieldContainer[MissingRange]
    unknown_camera: bool
    def __init__(self, hold_tag: _Optional[str] = ..., camera_id: _Optional[str] = ..., range: _Optional[_Union[_common_pb2.TimeRange, _Mapping]] = ..., unsent_segments: _Optional[int] = ..., unsent_bytes: _Optional[int] = ..., recorded_until_unix_us: _Optional[int] = ..., missing: _Optional[_Iterable[_Union[MissingRange, _Mapping]]] = ..., unknown_camera: _Optional[bool] = ...) -> None: ...

class Inventory(_message.Message):
    __slots__ = ("device_id", "reported_unix_us", "backlog", "unsent", "holds")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    REPORTED_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    UNSENT_FIELD_NUMBER: _ClassVar[int]
    HOLDS_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    reported_unix_us: int
    backlog: _containers.RepeatedCompositeFieldContainer[BacklogEntry]
    unsent: _containers.RepeatedCompositeFieldContainer[SegmentRef]
    holds: _containers.RepeatedCompositeFieldContainer[HoldStatus]
    def __init__(self, device_id: _Optional[str] = ..., reported_unix_us: _Optional[int] = ..., backlog: _Optional[_Iterable[_Union[BacklogEntry, _Mapping]]] = ..., unsent: _Optional[_Iterable[_Union[SegmentRef, _Mapping]]] = ..., holds: _Optional[_Iterable[_Union[HoldStatus, _Mapping]]] = ...) -> None: ...

class InventoryAck(_message.Message):
    __slots__ = ("plan_version", "server_unix_us")
    PLAN_VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVER_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    plan_version: int
    server_unix_us: int
    def __init__(self, plan_version: _Optional[int] = ..., server_unix_us: _Optional[int] = ...) -> None: ...

class LeaseStreamRequest(_message.Message):
    __slots__ = ("device_id",)
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    def __init__(self, device_id: _Optional[str] = ...) -> None: ...

class Lease(_message.Message):
    __slots__ = ("lease_id", "segments", "rate_bps", "expires_unix_us", "traffic_class", "holds", "holds_complete", "plan_version")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    RATE_BPS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_CLASS_FIELD_NUMBER: _ClassVar[int]
    HOLDS_FIELD_NUMBER: _ClassVar[int]
    HOLDS_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    PLAN_VERSION_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    segments: _containers.RepeatedCompositeFieldContainer[SegmentRef]
    rate_bps: int
    expires_unix_us: int
    traffic_class: _common_pb2.TrafficClass
    holds: _containers.RepeatedCompositeFieldContainer[HoldSpec]
    holds_complete: bool
    plan_version: int
    def __init__(self, lease_id: _Optional[str] = ..., segments: _Optional[_Iterable[_Union[SegmentRef, _Mapping]]] = ..., rate_bps: _Optional[int] = ..., expires_unix_us: _Optional[int] = ..., traffic_class: _Optional[_Union[_common_pb2.TrafficClass, str]] = ..., holds: _Optional[_Iterable[_Union[HoldSpec, _Mapping]]] = ..., holds_complete: _Optional[bool] = ..., plan_version: _Optional[int] = ...) -> None: ...

class LeaseReport(_message.Message):
    __slots__ = ("lease_id", "done_segment_ids", "failed_segment_ids")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    DONE_SEGMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    FAILED_SEGMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    done_segment_ids: _containers.RepeatedScalarFieldContainer[str]
    failed_segment_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, lease_id: _Optional[str] = ..., done_segment_ids: _Optional[_Iterable[str]] = ..., failed_segment_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class LeaseReportAck(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FetchConfigRequest(_message.Message):
    __slots__ = ("device_id",)
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    def __init__(self, device_id: _Optional[str] = ...) -> None: ...

class CameraConfig(_message.Message):
    __slots__ = ("camera_id", "url", "kind", "segment_seconds")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    url: str
    kind: str
    segment_seconds: int
    def __init__(self, camera_id: _Optional[str] = ..., url: _Optional[str] = ..., kind: _Optional[str] = ..., segment_seconds: _Optional[int] = ...) -> None: ...

class AgentConfig(_message.Message):
    __slots__ = ("device_id", "cameras", "buffer_quota_bytes", "upload_rate_bps")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    CAMERAS_FIELD_NUMBER: _ClassVar[int]
    BUFFER_QUOTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_RATE_BPS_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    cameras: _containers.RepeatedCompositeFieldContainer[CameraConfig]
    buffer_quota_bytes: int
    upload_rate_bps: int
    def __init__(self, device_id: _Optional[str] = ..., cameras: _Optional[_Iterable[_Union[CameraConfig, _Mapping]]] = ..., buffer_quota_bytes: _Optional[int] = ..., upload_rate_bps: _Optional[int] = ...) -> None: ...
