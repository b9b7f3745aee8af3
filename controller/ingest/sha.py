"""SHA-256 whose state can be saved at a part boundary and resumed by another process.

Why: a segment streamed into a multipart upload is checked against the SHA-256 its agent
declared, and the parts already stored are never read back (an unfinished multipart upload
cannot be read). A controller that resumes an upload another one started (after a kill -9,
or on another replica) must continue the hash where the parts end. `hashlib` cannot export
its state, so this drives OpenSSL's SHA-256 (the same code hashlib runs, SHA-NI included;
ctypes releases the GIL during each update) through its context struct.

The saved state is portable, not a memory dump: at a 64-byte boundary (every part size is a
multiple of 1 MiB) SHA-256's whole state is its eight 32-bit words and the byte count, kept
as 32 bytes big-endian + the count. `from_state` refuses anything else.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
from functools import cache

_BLOCK = 64


class _Ctx(ctypes.Structure):
    """OpenSSL's SHA256_CTX (stable since 0.9.8: h[8], Nl, Nh, data[16], num, md_len)."""

    _fields_ = [
        ("h", ctypes.c_uint32 * 8),
        ("Nl", ctypes.c_uint32),
        ("Nh", ctypes.c_uint32),
        ("data", ctypes.c_uint32 * 16),
        ("num", ctypes.c_uint),
        ("md_len", ctypes.c_uint),
    ]


class _PyBuffer(ctypes.Structure):
    """CPython's Py_buffer (the stable buffer protocol struct)."""

    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.py_object),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_release_buffer.restype = None
_PYBUF_SIMPLE = 0  # contiguous bytes, read-only is fine


@cache
def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("crypto")
    if name is None:
        raise OSError("libcrypto (OpenSSL) not found: install it (Debian: apt install libssl3)")
    lib = ctypes.CDLL(name)
    lib.SHA256_Init.argtypes = [ctypes.POINTER(_Ctx)]
    lib.SHA256_Update.argtypes = [ctypes.POINTER(_Ctx), ctypes.c_void_p, ctypes.c_size_t]
    lib.SHA256_Final.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Ctx)]
    return lib


class ResumableSha256:
    """`update` bytes, `hexdigest` at the end; `state()` / `from_state()` at 64-byte marks."""

    def __init__(self) -> None:
        self._lib = _lib()
        self._ctx = _Ctx()
        self._lib.SHA256_Init(ctypes.byref(self._ctx))
        self.length = 0

    def update(self, data: bytes | memoryview, start: int = 0, end: int | None = None) -> None:
        """Hash `data[start:end]` without copying it (the buffer's own memory, held through
        the buffer protocol while OpenSSL reads it)."""
        size = data.nbytes if isinstance(data, memoryview) else len(data)
        stop = size if end is None else end
        if not 0 <= start <= stop <= size:
            raise ValueError(f"range {start}:{stop} outside {size} bytes")
        if stop == start:
            return
        if isinstance(data, bytes):
            base = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0
            self._lib.SHA256_Update(ctypes.byref(self._ctx), base + start, stop - start)
        else:
            view = _PyBuffer()
            if _get_buffer(data, ctypes.byref(view), _PYBUF_SIMPLE) != 0:  # pragma: no cover
                raise ValueError("not a contiguous buffer")
            try:
                self._lib.SHA256_Update(
                    ctypes.byref(self._ctx), (view.buf or 0) + start, stop - start
                )
            finally:
                _release_buffer(ctypes.byref(view))
        self.length += stop - start

    def hexdigest(self) -> str:
        copy = _Ctx.from_buffer_copy(self._ctx)
        out = ctypes.create_string_buffer(32)
        self._lib.SHA256_Final(out, ctypes.byref(copy))
        return out.raw.hex()

    def state(self) -> str:
        """The state after `length` bytes, as hex; only at a multiple of 64 bytes."""
        if self.length % _BLOCK:
            raise ValueError(f"SHA-256 state is only saved at 64-byte marks, not {self.length}")
        words = struct.pack(">8I", *self._ctx.h)
        return words.hex() + f":{self.length}"

    @classmethod
    def from_state(cls, state: str) -> ResumableSha256:
        """Continue a hash from `state()`; ValueError for anything malformed."""
        words_hex, sep, length_text = state.partition(":")
        length = int(length_text) if sep and length_text.isdigit() else -1
        words = bytes.fromhex(words_hex) if len(words_hex) == 64 else b""
        if length < 0 or length % _BLOCK or len(words) != 32:
            raise ValueError(f"not a saved SHA-256 state: {state[:80]!r}")
        sha = cls()
        sha._ctx.h[:] = struct.unpack(">8I", words)
        bits = length * 8
        sha._ctx.Nl = bits & 0xFFFFFFFF
        sha._ctx.Nh = (bits >> 32) & 0xFFFFFFFF
        sha._ctx.num = 0
        sha.length = length
        return sha
