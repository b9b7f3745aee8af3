"""Helpers for the HTTP API tests (no tests in here).

`ApiWorld`: the sharing side of a controller on real storage (tests/integration/test_export.py
`World`: SQLite catalog, local object store, audit log, grant/playback/export services on a
manual clock) served by the real `HttpComponent` (uvicorn) on a free 127.0.0.1 port, with
accounts for the people the tests play, and an httpx client.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from controller.api.app import create_app
from controller.api.component import HttpComponent
from controller.api.deps import ApiDeps, ApiSettings
from controller.audit.chain import AuditEntry
from controller.storage import ObjectStore
from controller.users.sessions import derive_session_key
from controller.users.store import UserStore
from tests.integration.test_export import T0, World

__all__ = [
    "CITY_ADMIN",
    "CX_ADMIN",
    "HOUR",
    "OFFICER",
    "PASSWORD",
    "PEOPLE",
    "T0",
    "VIEWER",
    "WUDU_OP",
    "ApiWorld",
    "Person",
    "assert_refused",
    "segment_urls",
]

PASSWORD = "correct horse battery"
HOUR = 3600 * 1_000_000


@dataclass(frozen=True)
class Person:
    user_id: str
    org_id: str
    role: str


OFFICER = Person("officer-1", "chengxian", "operator")  # World's OFFICER
VIEWER = Person("viewer-1", "chengxian", "viewer")
CX_ADMIN = Person("cx-admin", "chengxian", "admin")
CITY_ADMIN = Person("admin-1", "city", "admin")
WUDU_OP = Person("wd-op", "wudu", "operator")
PEOPLE = (OFFICER, VIEWER, CX_ADMIN, CITY_ADMIN, WUDU_OP)


class ApiWorld:
    def __init__(
        self,
        root: Path,
        settings: ApiSettings | None = None,
        store: ObjectStore | None = None,
        web_dir: Path | None = None,
        db_url: str | None = None,
    ) -> None:
        self.world = World(root, db_url)
        if store is not None:
            self.world.store = store  # type: ignore[assignment]
        w = self.world
        w.catalog.upsert_camera("cam-02", "dev-cx", resource_class="II")
        self.users = UserStore(w.engine, w.clock)
        for p in PEOPLE:
            self.users.create(p.user_id, p.org_id, p.role, PASSWORD, policy=w.policy)
        self.deps = ApiDeps(
            catalog=w.catalog,
            store=w.store,
            clock=w.clock,
            grants=w.grants,
            playback=w.playback,
            exports=w.exports,
            audit=w.audit,
            users=self.users,
            session_key=derive_session_key(w.keys.url_hmac),
            export_dir=root / "exports-outgoing",
            settings=settings or ApiSettings(),
        )
        if web_dir is not None:
            self.deps.web_dir = web_dir
        self.http = HttpComponent(
            create_app(self.deps), "127.0.0.1", 0, periodic=[w.playback.flush]
        )
        self.http.start()
        self.client = httpx.Client(base_url=self.http.base_url, timeout=30)
        self._sessions: dict[str, str] = {}
        for p in PEOPLE:  # log everyone in now, so tests count only their own audit entries
            self.login(p)

    @property
    def clock(self) -> Any:
        return self.world.clock

    def close(self) -> None:
        self.client.close()
        self.http.stop()
        assert self.world.audit.verify(self.world.keys.evidence_public).ok
        self.world.engine.dispose()

    # --- people -----------------------------------------------------------------------------

    def login(self, who: Person) -> str:
        if who.user_id not in self._sessions:
            r = self.client.post(
                "/api/v1/login", json={"user_id": who.user_id, "password": PASSWORD}
            )
            assert r.status_code == 200, r.text
            self._sessions[who.user_id] = r.json()["token"]
        return self._sessions[who.user_id]

    def auth(self, who: Person, grant: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.login(who)}"}
        if grant is not None:
            headers["X-Vigil-Grant"] = grant
        return headers

    def mint(self, who: Person = OFFICER, **body: Any) -> dict[str, Any]:
        values: dict[str, Any] = {
            "operations": ["playback"],
            "cameras": ["cam-01"],
            "from_us": T0,
            "to_us": T0 + 2 * HOUR,
            "purpose": "incident 17 review",
            "case_id": "CX-2026-017",
        }
        values.update(body)
        r = self.client.post("/api/v1/grants", json=values, headers=self.auth(who))
        assert r.status_code == 201, r.text
        out: dict[str, Any] = r.json()
        return out

    def playlist(
        self,
        token: str,
        who: Person = OFFICER,
        camera: str = "cam-01",
        lo: int = T0,
        hi: int = T0 + HOUR,
    ) -> httpx.Response:
        return self.client.get(
            f"/play/{camera}.m3u8",
            params={"from": str(lo), "to": str(hi)},
            headers=self.auth(who, token),
        )

    # --- audit ------------------------------------------------------------------------------

    def entries(self) -> list[AuditEntry]:
        return self.world.audit.search(limit=1000)


def segment_urls(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line.startswith("/play/seg/")]


def assert_refused(
    api: ApiWorld,
    response: httpx.Response,
    status: int,
    reason: str,
    before: int,
    action: str | None = None,
) -> None:
    """A refusal: the status, the JSON reason, nothing but JSON served, and exactly one new
    audit entry recording it (refused, same reason)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["reason"] == reason and body["message"], body
    entries = api.entries()
    assert len(entries) == before + 1, [(e.action, e.reason) for e in entries[:3]]
    newest = entries[0]
    assert (newest.outcome, newest.reason) == ("refused", reason), newest
    if action is not None:
        assert newest.action == action, newest
