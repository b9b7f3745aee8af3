"""Readiness: named probes, each answering why its dependency is not usable (None: fine).

`check(probes)` runs them all and is pure apart from the probes themselves, so the decision
(ready only when every probe answers None; a probe that raises counts as not ready, with the
exception's text) is unit tested with plain functions. The assembly builds the probes
(catalog, object store, MQTT broker when configured); `/readyz` answers 200 or 503 with them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from vigil_common.redact import redact_text

Probe = Callable[[], str | None]
Readiness = Mapping[str, Probe]


def check(probes: Readiness) -> dict[str, str]:
    """name -> why not ready, for every failing probe (empty: ready)."""
    failing: dict[str, str] = {}
    for name, probe in probes.items():
        try:
            why = probe()
        except Exception as exc:  # a probe is a question; any failure is a "no"
            why = redact_text(f"{type(exc).__name__}: {exc}")[:300]
        if why is not None:
            failing[name] = why
    return failing
