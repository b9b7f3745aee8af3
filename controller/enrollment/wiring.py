"""Building enrollment for a controller: the service, the revocation guard (always: a retired
device is refused even on a controller without an enrollment listener) and, when
`[enrollment] listen` is set, the listener.

    parts = build(core)                     # before the mutual-TLS server: its guard
    ingest(core, tls, interceptors=[parts.guard, ...])
    listen(parts, core)                     # binds the listener when configured
    components += parts.components()
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.enrollment.accounts import accounts_for
from controller.enrollment.guard import RevocationGuard
from controller.enrollment.listener import EnrollmentListener, EnrollServicer, Limits
from controller.enrollment.service import EnrollmentService
from controller.enrollment.store import EnrollmentStore
from controller.fleet.ratelimit import RatePolicy
from controller.pki.certs import PkiError
from controller.pki.store import load_ca
from controller.runtime import Component, Core, StartupError


@dataclass
class Enrollment:
    store: EnrollmentStore
    guard: RevocationGuard
    service: EnrollmentService | None = None
    listener: EnrollmentListener | None = None

    def components(self) -> list[Component]:
        return [self.guard.task, *([self.listener] if self.listener else [])]


def build(core: Core) -> Enrollment:
    """The store and the guard, loaded once now (the server must not start guard-less)."""
    cfg = core.config.enrollment
    store = EnrollmentStore(core.engine)
    parts = Enrollment(store, RevocationGuard(store, core.clock, cfg.revocation_refresh_s))
    parts.guard.refresh()
    return parts


def listen(parts: Enrollment, core: Core, limits: Limits | None = None) -> None:
    """Bind the enrollment listener when `[enrollment] listen` is set."""
    cfg = core.config.enrollment
    if not cfg.listen:
        return
    cert_path, key_path, _ = core.config.tls_paths()
    try:
        ca = load_ca(core.config.data_path)
        cert, key = cert_path.read_bytes(), key_path.read_bytes()
    except (PkiError, OSError) as exc:
        raise StartupError(f"enrollment.listen needs the city CA and server key: {exc}") from exc
    parts.service = EnrollmentService(
        parts.store, core.catalog, ca, core.clock, accounts_for(core.config), cfg.cert_days
    )
    limits = limits or Limits(per_peer=RatePolicy(cfg.peer_rate_per_s, float(cfg.peer_burst)))
    servicer = EnrollServicer(parts.service, core.clock, limits)
    try:
        parts.listener = EnrollmentListener(servicer, cfg.listen, cert, key)
    except OSError as exc:
        raise StartupError(f"enrollment.listen {cfg.listen}: {exc}") from exc
