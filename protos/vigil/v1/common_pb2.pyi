from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class DeviceKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEVICE_KIND_UNSPECIFIED: _ClassVar[DeviceKind]
    DEVICE_KIND_NVR: _ClassVar[DeviceKind]
    DEVICE_KIND_HANDHELD: _ClassVar[DeviceKind]

class TrafficClass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAFFIC_CLASS_UNSPECIFIED: _ClassVar[TrafficClass]
    TRAFFIC_CLASS_EVIDENCE: _ClassVar[TrafficClass]
    TRAFFIC_CLASS_LIVE: _ClassVar[TrafficClass]
    TRAFFIC_CLASS_EVENT: _ClassVar[TrafficClass]
    TRAFFIC_CLASS_ARCHIVE: _ClassVar[TrafficClass]
    TRAFFIC_CLASS_BACKFILL: _ClassVar[TrafficClass]
DEVICE_KIND_UNSPECIFIED: DeviceKind
DEVICE_KIND_NVR: DeviceKind
DEVICE_KIND_HANDHELD: DeviceKind
TRAFFIC_CLASS_UNSPECIFIED: TrafficClass
TRAFFIC_CLASS_EVIDENCE: TrafficClass
TRAFFIC_CLASS_LIVE: TrafficClass
TRAFFIC_CLASS_EVENT: TrafficClass
TRAFFIC_CLASS_ARCHIVE: TrafficClass
TRAFFIC_CLASS_BACKFILL: TrafficClass

class TimeRange(_message.Message):
    __slots__ = ("start_unix_us", "end_unix_us")
    START_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    END_UNIX_US_FIELD_NUMBER: _ClassVar[int]
    start_unix_us: int
    end_unix_us: int
    def __init__(self, start_unix_us: _Optional[int] = ..., end_unix_us: _Optional[int] = ...) -> None: ...
