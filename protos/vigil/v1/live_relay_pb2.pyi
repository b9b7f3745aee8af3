from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class RelayRequest(_message.Message):
    __slots__ = ("camera_id",)
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    def __init__(self, camera_id: _Optional[str] = ...) -> None: ...

class RelayPacket(_message.Message):
    __slots__ = ("chunks", "state", "detail", "frame_us", "codec")
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    FRAME_US_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    chunks: _containers.RepeatedScalarFieldContainer[bytes]
    state: str
    detail: str
    frame_us: int
    codec: str
    def __init__(self, chunks: _Optional[_Iterable[bytes]] = ..., state: _Optional[str] = ..., detail: _Optional[str] = ..., frame_us: _Optional[int] = ..., codec: _Optional[str] = ...) -> None: ...
