"""The revocation guard parses each peer certificate once (controller/enrollment/guard.py):
the cache is bounded, and past the bound only the oldest entry goes, so a fleet larger than
the bound does not make every call parse its certificate again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography import x509

from controller.clock import ManualClock
from controller.enrollment import guard
from controller.pki import create_ca, issue_device_cert

NOW = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)


def test_past_the_bound_only_the_oldest_certificate_is_parsed_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ca = create_ca(NOW)
    pems = [issue_device_cert(ca, f"dev{i}", NOW).cert_pem for i in range(4)]
    parsed: list[bytes] = []
    real = x509.load_pem_x509_certificate

    def counting(pem: bytes) -> Any:
        parsed.append(pem)
        return real(pem)

    monkeypatch.setattr(x509, "load_pem_x509_certificate", counting)  # as guard.py calls it
    monkeypatch.setattr(guard, "_CACHE_MAX", 3)
    g = guard.RevocationGuard(store=None, clock=ManualClock(0))  # type: ignore[arg-type]
    auth = [{"x509_pem_cert": [pem]} for pem in pems]
    facts = [g.admit(a) for a in auth]  # 4 parses; the 4th drops dev0's entry only
    assert [f[1] for f in facts] == ["dev0", "dev1", "dev2", "dev3"]  # type: ignore[index]
    assert len(parsed) == 4
    for a in auth[1:]:
        g.admit(a)
    assert len(parsed) == 4  # dev1..dev3 still known
    assert g.admit(auth[0]) == facts[0] and len(parsed) == 5  # dev0 again, once
