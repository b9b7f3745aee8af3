from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class LivePacket(_message.Message):
    __slots__ = ("camera_id", "data", "keyframe", "captured_us", "camera_down", "detail", "codec")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    KEYFRAME_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_US_FIELD_NUMBER: _ClassVar[int]
    CAMERA_DOWN_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    data: bytes
    keyframe: bool
    captured_us: int
    camera_down: bool
    detail: str
    codec: str
    def __init__(self, camera_id: _Optional[str] = ..., data: _Optional[bytes] = ..., keyframe: _Optional[bool] = ..., captured_us: _Optional[int] = ..., camera_down: _Optional[bool] = ..., detail: _Optional[str] = ..., codec: _Optional[str] = ...) -> None: ...

class LiveCommand(_message.Message):
    __slots__ = ("camera_id", "start")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    start: bool
    def __init__(self, camera_id: _Optional[str] = ..., start: _Optional[bool] = ...) -> None: ...
