"""Revoked certificates refused at the RPC layer, on every replica, within `refresh_s`.

gRPC's TLS has no CRL hook in Python, so the check sits in a server interceptor placed before
every other: it reads the verified peer certificate from the call's auth context, and a call
whose certificate is revoked (by serial, or issued before its device was retired) ends with
UNAUTHENTICATED before any servicer runs. The revocation set comes from the shared database
(controller/enrollment/store.py) and is re-read every `refresh_s` by a periodic task, so a
`device retire` on any replica is in force on all of them within seconds; a failed read keeps
the last set (and is logged) rather than letting everything through or nothing.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from controller.clock import Clock
from controller.enrollment.rules import Revocations, serial_hex
from controller.enrollment.store import EnrollmentStore
from controller.pki.certs import BACKDATE
from controller.runtime import PeriodicTask

log = logging.getLogger("vigil.enrollment")
REVOKED = "this device's certificate is revoked"
_CACHE_MAX = 4096


class RevocationGuard(grpc.aio.ServerInterceptor):
    def __init__(self, store: EnrollmentStore, clock: Clock, refresh_s: float = 1.0) -> None:
        self._store = store
        self._clock = clock
        self._current = Revocations()
        self._facts: dict[bytes, tuple[str, str, int]] = {}  # pem -> (serial, cn, issued_us)
        self.task = PeriodicTask("revocation-refresh", refresh_s, self.refresh, run_at_start=True)

    def refresh(self) -> None:
        self._current = self._store.revocations(self._clock.now_us())

    @property
    def current(self) -> Revocations:
        return self._current

    def _cert_facts(self, pem: bytes) -> tuple[str, str, int]:
        facts = self._facts.get(pem)
        if facts is None:
            cert = x509.load_pem_x509_certificate(pem)
            cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            cn = str(cns[0].value) if cns else ""
            issued = cert.not_valid_before_utc + BACKDATE
            facts = (serial_hex(cert.serial_number), cn, int(issued.timestamp() * 1_000_000))
            if len(self._facts) >= _CACHE_MAX:
                self._facts.clear()
            self._facts[pem] = facts
        return facts

    def refused(self, auth: dict[str, Any]) -> bool:
        """True when the peer's verified certificate is revoked (no certificate: not ours to
        judge; mutual TLS already refused it, or this is the enrollment listener)."""
        pems = auth.get("x509_pem_cert")
        if not pems or not isinstance(pems[0], bytes):
            return False
        current = self._current
        if not current.serials and not current.device_cutoff_us:
            return False
        try:
            serial, cn, issued_us = self._cert_facts(pems[0])
        except ValueError:
            return True
        return current.refuses(serial, cn, issued_us)

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        if handler is None or str(details.method).startswith("/grpc.health."):
            return handler
        return _guarded(handler, self.refused)


def _guarded(
    handler: grpc.RpcMethodHandler[Any, Any], refused: Callable[[dict[str, Any]], bool]
) -> grpc.RpcMethodHandler[Any, Any]:
    """The same handler, checking the peer first (sync handlers run on the pool: wrapped
    likewise, since a plain servicer must be guarded too)."""
    des, ser = handler.request_deserializer, handler.response_serializer
    kinds = (
        ("stream_stream", grpc.stream_stream_rpc_method_handler),
        ("stream_unary", grpc.stream_unary_rpc_method_handler),
        ("unary_stream", grpc.unary_stream_rpc_method_handler),
        ("unary_unary", grpc.unary_unary_rpc_method_handler),
    )
    for name, make in kinds:
        behaviour = getattr(handler, name)
        if behaviour is not None:
            return make(_wrap(behaviour, refused), des, ser)
    return handler


def _wrap(behaviour: Any, refused: Callable[[dict[str, Any]], bool]) -> Any:
    if inspect.isasyncgenfunction(behaviour):

        async def agen(request: Any, context: Any) -> AsyncIterator[Any]:
            if refused(context.auth_context()):
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, REVOKED)
            async for reply in behaviour(request, context):
                yield reply

        return agen
    if inspect.iscoroutinefunction(behaviour):

        async def coro(request: Any, context: Any) -> Any:
            if refused(context.auth_context()):
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, REVOKED)
            return await behaviour(request, context)

        return coro

    def sync(request: Any, context: Any) -> Any:
        if refused(context.auth_context()):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, REVOKED)
        return behaviour(request, context)

    return sync
