from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GrantOperation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRANT_OPERATION_UNSPECIFIED: _ClassVar[GrantOperation]
    GRANT_OPERATION_LIVE: _ClassVar[GrantOperation]
    GRANT_OPERATION_PLAYBACK: _ClassVar[GrantOperation]
    GRANT_OPERATION_DOWNLOAD: _ClassVar[GrantOperation]
GRANT_OPERATION_UNSPECIFIED: GrantOperation
GRANT_OPERATION_LIVE: GrantOperation
GRANT_OPERATION_PLAYBACK: GrantOperation
GRANT_OPERATION_DOWNLOAD: GrantOperation

class Grant(_message.Message):
    __slots__ = ("version", "grant_id", "parent_id", "issuer_org", "holder_org", "holder_user", "holder_public_key", "camera_ids", "area_prefixes", "resource_classes", "footage_from_us", "footage_to_us", "operations", "not_before_us", "expires_us", "purpose", "case_id", "watermark_id", "download_limit", "issued_at_us", "renewal")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUER_ORG_FIELD_NUMBER: _ClassVar[int]
    HOLDER_ORG_FIELD_NUMBER: _ClassVar[int]
    HOLDER_USER_FIELD_NUMBER: _ClassVar[int]
    HOLDER_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    CAMERA_IDS_FIELD_NUMBER: _ClassVar[int]
    AREA_PREFIXES_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_CLASSES_FIELD_NUMBER: _ClassVar[int]
    FOOTAGE_FROM_US_FIELD_NUMBER: _ClassVar[int]
    FOOTAGE_TO_US_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_US_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_US_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_ID_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_LIMIT_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_US_FIELD_NUMBER: _ClassVar[int]
    RENEWAL_FIELD_NUMBER: _ClassVar[int]
    version: int
    grant_id: str
    parent_id: str
    issuer_org: str
    holder_org: str
    holder_user: str
    holder_public_key: bytes
    camera_ids: _containers.RepeatedScalarFieldContainer[str]
    area_prefixes: _containers.RepeatedScalarFieldContainer[str]
    resource_classes: _containers.RepeatedScalarFieldContainer[str]
    footage_from_us: int
    footage_to_us: int
    operations: _containers.RepeatedScalarFieldContainer[GrantOperation]
    not_before_us: int
    expires_us: int
    purpose: str
    case_id: str
    watermark_id: str
    download_limit: int
    issued_at_us: int
    renewal: int
    def __init__(self, version: _Optional[int] = ..., grant_id: _Optional[str] = ..., parent_id: _Optional[str] = ..., issuer_org: _Optional[str] = ..., holder_org: _Optional[str] = ..., holder_user: _Optional[str] = ..., holder_public_key: _Optional[bytes] = ..., camera_ids: _Optional[_Iterable[str]] = ..., area_prefixes: _Optional[_Iterable[str]] = ..., resource_classes: _Optional[_Iterable[str]] = ..., footage_from_us: _Optional[int] = ..., footage_to_us: _Optional[int] = ..., operations: _Optional[_Iterable[_Union[GrantOperation, str]]] = ..., not_before_us: _Optional[int] = ..., expires_us: _Optional[int] = ..., purpose: _Optional[str] = ..., case_id: _Optional[str] = ..., watermark_id: _Optional[str] = ..., download_limit: _Optional[int] = ..., issued_at_us: _Optional[int] = ..., renewal: _Optional[int] = ...) -> None: ...

class SignedGrant(_message.Message):
    __slots__ = ("grant", "signature", "key_id")
    GRANT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    grant: bytes
    signature: bytes
    key_id: str
    def __init__(self, grant: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., key_id: _Optional[str] = ...) -> None: ...

class GrantChain(_message.Message):
    __slots__ = ("links",)
    LINKS_FIELD_NUMBER: _ClassVar[int]
    links: _containers.RepeatedCompositeFieldContainer[SignedGrant]
    def __init__(self, links: _Optional[_Iterable[_Union[SignedGrant, _Mapping]]] = ...) -> None: ...

class RevocationList(_message.Message):
    __slots__ = ("sequence", "issued_at_us", "next_update_us", "revoked_ids")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_US_FIELD_NUMBER: _ClassVar[int]
    NEXT_UPDATE_US_FIELD_NUMBER: _ClassVar[int]
    REVOKED_IDS_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    issued_at_us: int
    next_update_us: int
    revoked_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sequence: _Optional[int] = ..., issued_at_us: _Optional[int] = ..., next_update_us: _Optional[int] = ..., revoked_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SignedRevocationList(_message.Message):
    __slots__ = ("list", "signature", "key_id")
    LIST_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    list: bytes
    signature: bytes
    key_id: str
    def __init__(self, list: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., key_id: _Optional[str] = ...) -> None: ...
