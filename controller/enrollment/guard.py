"""Revoked certificates refused at the RPC layer, on every replica, within `refresh_s`.

gRPC's TLS has no CRL hook in Python, so the check sits in a server interceptor placed before
every other: it reads the verified peer certificate from the call's auth context, and a call
whose certificate is revoked (by serial, or issued before its device was retired) ends with
UNAUTHENTICATED before any servicer runs. The revocation set comes from the shared database
(controller/enrollment/store.py) and is re-read every `refresh_s` by a periodic task, so a
`device retire` on any replica is in force on all of them within seconds; a failed read keeps
the last set (and is logged) rather than letting everything through or nothing.

Calls already open when a certificate is revoked (a lease stream, a live feed, an upload) are
cut too, at the next refresh that sees the change (cutoff.py): UNAUTHENTICATED, like a new call.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from controller.clock import Clock
from controller.enrollment.cutoff import Facts, LiveCall, LiveCalls
from controller.enrollment.rules import Revocations, serial_hex
from controller.enrollment.store import EnrollmentStore
from controller.pki.certs import BACKDATE
from controller.runtime import PeriodicTask

log = logging.getLogger("vigil.enrollment")
REVOKED = "this device's certificate is revoked"
# Parsed certificates kept (by SHA-256 of the PEM), oldest dropped first: more than a city's
# agents on one controller (10,000+), so each call does not parse its peer's certificate
# again on the event loop (4,096 made every call of a 10,000-agent fleet re-parse).
_CACHE_MAX = 65_536


class RevocationGuard(grpc.aio.ServerInterceptor):
    def __init__(self, store: EnrollmentStore, clock: Clock, refresh_s: float = 1.0) -> None:
        self._store = store
        self._clock = clock
        self._current = Revocations()
        self._facts: dict[bytes, Facts] = {}  # sha256(pem) -> (serial, cn, issued_us)
        self.live = LiveCalls()
        self.task = PeriodicTask("revocation-refresh", refresh_s, self.refresh, run_at_start=True)

    def refresh(self) -> None:
        """Re-read the revocations; when they changed, cut the open calls they now refuse."""
        fresh = self._store.revocations(self._clock.now_us())
        changed = fresh != self._current
        self._current = fresh
        if changed:
            self.live.cut(fresh)

    @property
    def current(self) -> Revocations:
        return self._current

    def _cert_facts(self, pem: bytes) -> Facts:
        key = hashlib.sha256(pem).digest()
        facts = self._facts.get(key)
        if facts is None:
            cert = x509.load_pem_x509_certificate(pem)
            cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            cn = str(cns[0].value) if cns else ""
            issued = cert.not_valid_before_utc + BACKDATE
            facts = (serial_hex(cert.serial_number), cn, int(issued.timestamp() * 1_000_000))
            if len(self._facts) >= _CACHE_MAX:
                del self._facts[next(iter(self._facts))]
            self._facts[key] = facts
        return facts

    def refused(self, auth: dict[str, Any]) -> bool:
        """True when the peer's verified certificate is revoked (no certificate: not ours to
        judge; mutual TLS already refused it, or this is the enrollment listener)."""
        return self.admit(auth) is _REFUSED

    def admit(self, auth: dict[str, Any]) -> Facts | None | object:
        """The peer certificate's facts (to watch the call), None when there is no
        certificate, `_REFUSED` when it is revoked or unreadable."""
        pems = auth.get("x509_pem_cert")
        if not pems or not isinstance(pems[0], bytes):
            return None
        try:
            facts = self._cert_facts(pems[0])
        except ValueError:
            return _REFUSED
        return _REFUSED if self._current.refuses(*facts) else facts

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
        return _guarded(handler, self)


_REFUSED = object()


def _guarded(
    handler: grpc.RpcMethodHandler[Any, Any], guard: RevocationGuard
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
            return make(_wrap(behaviour, guard), des, ser)
    return handler


async def _admitted(guard: RevocationGuard, context: Any) -> LiveCall | None:
    """Abort a revoked peer; else the call, registered to be cut if revoked later."""
    facts = guard.admit(context.auth_context())
    if facts is _REFUSED:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, REVOKED)
    return guard.live.open(facts) if isinstance(facts, tuple) else None


def _uncancel_if_cut(call: LiveCall | None) -> bool:
    """After a CancelledError: True (and the cancellation taken back) when it was our cut."""
    if call is None or not call.revoked:
        return False
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
    return True


def _wrap(behaviour: Any, guard: RevocationGuard) -> Any:
    live = guard.live
    if inspect.isasyncgenfunction(behaviour):

        async def agen(request: Any, context: Any) -> AsyncIterator[Any]:
            call = await _admitted(guard, context)
            replies = behaviour(request, context)
            try:
                while call is None or not call.revoked:
                    if call is not None:
                        call.inside = True
                    try:
                        reply = await replies.__anext__()
                    except StopAsyncIteration:
                        return
                    finally:
                        if call is not None:
                            call.inside = False
                    yield reply
            except asyncio.CancelledError:
                if not _uncancel_if_cut(call):
                    raise
            finally:
                if call is not None:
                    live.close(call)
                await replies.aclose()
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, REVOKED)

        return agen
    if inspect.iscoroutinefunction(behaviour):

        async def coro(request: Any, context: Any) -> Any:
            call = await _admitted(guard, context)
            try:
                if call is not None:
                    call.inside = True
                return await behaviour(request, context)
            except asyncio.CancelledError:
                if not _uncancel_if_cut(call):
                    raise
            finally:
                if call is not None:
                    live.close(call)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, REVOKED)

        return coro

    def sync(request: Any, context: Any) -> Any:
        if guard.refused(context.auth_context()):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, REVOKED)
        return behaviour(request, context)

    return sync
