"""Sharing end to end on a real catalog and object store: grants, playlists, signed segment
URLs, delegation, revocation, and every bad input refused, audited, nothing served. The audit
log verifies at the end of each story."""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from controller.__main__ import main
from controller.grants.codec import Link, anchors_from, decode_token, encode_token, sign_grant
from controller.grants.errors import GrantRefused, Reason
from controller.grants.keys import ensure_keys, keys_dir, load_private
from controller.grants.mint import GrantRequest
from controller.grants.model import HOUR_US, Operation
from controller.grants.policy import Role, User
from controller.grants.revocation import accept_revocation_list
from controller.grants.service import REVOKED_CACHE_S, GrantService
from controller.playback.playlist import NoFootageError
from controller.playback.service import PlaybackService
from controller.playback.urlsign import URL_TTL_US
from tests.integration.test_export import OFFICER, T0, World

CITY_ADMIN = User("admin-1", "city", Role.ADMIN)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    w.add_footage("cam-01", T0, 6)  # [0, 60 s)
    w.add_footage("cam-01", T0 + 120 * 1_000_000, 6)  # a 60 s gap, then [120, 180 s)
    w.add_footage("wd-01", T0, 3)
    yield w
    assert w.audit.verify(w.keys.evidence_public).ok
    w.engine.dispose()


def urls(playlist: str) -> list[tuple[str, str]]:
    """(segment id, query) of every segment URL in a playlist."""
    out = []
    for line in playlist.splitlines():
        if line.startswith("/play/seg/"):
            path, query = line.split("?", 1)
            out.append((path.removeprefix("/play/seg/").removesuffix(".ts"), query))
    return out


def playlist(world: World, token: str, lo: int = T0, hi: int = T0 + HOUR_US, **kw: object) -> str:
    req = world.request(Operation.PLAYBACK, lo, hi, **kw)  # type: ignore[arg-type]
    return world.playback.playlist(token, req, OFFICER, world.segments)


def refusal(world: World, reason: Reason, fn, *args, **kwargs) -> None:
    before = len(world.audit.search(limit=1000))
    with pytest.raises(GrantRefused) as info:
        fn(*args, **kwargs)
    assert info.value.reason is reason, str(info.value)
    entries = world.audit.search(limit=1000)
    assert len(entries) == before + 1
    assert (entries[0].outcome, entries[0].reason) == ("refused", reason.value)
    assert info.value.message in entries[0].detail


def test_playback_with_gaps_signed_urls_and_aggregated_fetch_audit(world: World) -> None:
    token = world.mint({Operation.PLAYBACK})
    text = playlist(world, token)
    assert text.count("#EXTINF:10.000,") == 12 and "#EXT-X-ENDLIST" in text
    assert text.count("#EXT-X-DISCONTINUITY") == 1  # the 60 s hole is shown, not joined
    segs = urls(text)
    for seg_id, query in segs:
        gid = world.playback.check_segment(seg_id, query, OFFICER, "cam-01", 1000)
    assert gid == decode_token(token).leaf.grant_id
    assert world.playback.flush() == 1
    fetch = world.audit.search(action="segment_fetch")
    assert len(fetch) == 1 and '"count":12' in fetch[0].detail
    assert world.audit.search(action="playlist")[0].camera_id == "cam-01"
    # A URL is bound to its segment and expires after 5 minutes.
    seg_id, query = segs[0]
    refusal(
        world,
        Reason.URL_TAMPERED,
        world.playback.check_segment,
        segs[1][0],
        query,
        OFFICER,
        "cam-01",
        1,
    )
    refusal(
        world,
        Reason.URL_TAMPERED,
        world.playback.check_segment,
        seg_id,
        query[:-2] + "AA",
        OFFICER,
        "cam-01",
        1,
    )
    world.clock.advance(URL_TTL_US / 1e6)
    refusal(
        world, Reason.URL_EXPIRED, world.playback.check_segment, seg_id, query, OFFICER, "cam-01", 1
    )


def test_live_playlist_and_renewal(world: World) -> None:
    world.clock._now_us = T0 + 180 * 1_000_000 + 1  # just after the newest segment
    token = world.mint({Operation.LIVE}, footage_to_us=T0 + 2 * HOUR_US)
    req = world.request(Operation.LIVE, 0, 0)
    text = world.playback.playlist(
        token, req, OFFICER, world.segments, live_first_sequence=lambda s: 7
    )
    assert "#EXT-X-ENDLIST" not in text and "#EXT-X-MEDIA-SEQUENCE:13" in text  # 7 + 6 slid out
    assert len(urls(text)) == 6
    world.clock.advance(14 * 60)
    renewed = world.grants.renew(token, OFFICER)
    assert decode_token(renewed).leaf.grant_id == decode_token(token).leaf.grant_id
    world.clock.advance(2 * 60)  # the original has expired, the renewal has not
    world.add_footage("cam-01", world.clock.now_us() - 60 * 1_000_000, 6)
    refusal(world, Reason.EXPIRED, world.playback.playlist, token, req, OFFICER, world.segments)
    world.playback.playlist(renewed, req, OFFICER, world.segments)
    assert world.audit.search(action="grant_renewed")


def test_revocation_reaches_other_replicas_within_seconds(world: World) -> None:
    token = world.mint({Operation.PLAYBACK})
    other_grants = GrantService(world.engine, world.clock, world.keys, world.policy, world.audit)
    other = PlaybackService(other_grants)
    text = playlist(world, token)
    req = world.request(Operation.PLAYBACK, T0, T0 + HOUR_US)
    other.playlist(token, req, OFFICER, world.segments)  # caches "nothing revoked"
    gid = decode_token(token).leaf.grant_id
    refusal(world, Reason.ROLE_NOT_ALLOWED, world.grants.revoke, gid, OFFICER, "not mine")
    seq = world.grants.revoke(gid, CITY_ADMIN, "officer left the case")
    assert seq >= 1
    refusal(world, Reason.REVOKED, world.playback.playlist, token, req, OFFICER, world.segments)
    seg_id, query = urls(text)[0]
    refusal(
        world, Reason.REVOKED, world.playback.check_segment, seg_id, query, OFFICER, "cam-01", 1
    )
    world.clock.advance(REVOKED_CACHE_S)
    refusal(world, Reason.REVOKED, other.playlist, token, req, OFFICER, world.segments)
    published = accept_revocation_list(
        world.grants.revocation_list(),
        anchors_from([world.keys.root_public]),
        None,
        world.clock.now_us(),
    )
    assert gid in published.revoked and published.sequence == seq


def test_bad_input_is_refused_audited_and_serves_nothing(world: World) -> None:
    token = world.mint({Operation.PLAYBACK})
    req = world.request(Operation.PLAYBACK, T0, T0 + HOUR_US)
    svc, segs = world.playback, world.segments
    refusal(world, Reason.MALFORMED, svc.playlist, "garbage!", req, OFFICER, segs)
    refusal(world, Reason.OVERSIZE, svc.playlist, "A" * 100_000, req, OFFICER, segs)
    chain = decode_token(token)
    root = chain.links[0]
    forged = encode_token([Link(root.body, root.raw, b"\x00" * 64, root.key_id)])
    refusal(world, Reason.BAD_SIGNATURE, svc.playlist, forged, req, OFFICER, segs)
    refusal(
        world,
        Reason.CAMERA_OUT_OF_SCOPE,
        svc.playlist,
        token,
        world.request(Operation.PLAYBACK, T0, T0 + HOUR_US, "wd-01"),
        OFFICER,
        segs,
    )
    refusal(
        world,
        Reason.OUTSIDE_WINDOW,
        svc.playlist,
        token,
        world.request(Operation.PLAYBACK, T0 - HOUR_US, T0),
        OFFICER,
        segs,
    )
    refusal(
        world,
        Reason.OPERATION_NOT_GRANTED,
        svc.playlist,
        token,
        world.request(Operation.LIVE, 0, 0),
        OFFICER,
        segs,
    )
    stranger = User("x", "wudu", Role.OPERATOR)
    refusal(world, Reason.WRONG_HOLDER, svc.playlist, token, req, stranger, segs)
    # Minting for another organisation's camera, or a window over 24 h without a case.
    wd = GrantRequest(
        "chengxian",
        frozenset({Operation.PLAYBACK}),
        T0,
        T0 + HOUR_US,
        "p",
        camera_ids=frozenset({"wd-01"}),
    )
    refusal(
        world, Reason.NOT_ENTITLED, world.grants.mint, OFFICER, wd, {"wd-01": world.camera("wd-01")}
    )
    refusal(
        world,
        Reason.CASE_REQUIRED,
        world.mint,
        {Operation.PLAYBACK},
        OFFICER,
        case_id="",
        footage_from_us=T0 - 30 * HOUR_US,
    )
    later = world.mint(
        {Operation.PLAYBACK}, not_before_us=world.clock.now_us() + 10 * 60 * 1_000_000
    )
    refusal(world, Reason.NOT_YET_VALID, svc.playlist, later, req, OFFICER, segs)
    world.clock.advance(HOUR_US / 1e6)
    refusal(world, Reason.EXPIRED, svc.playlist, token, req, OFFICER, segs)
    # Footage-free ranges are an empty answer, audited, not an error of the grant.
    fresh = world.mint({Operation.PLAYBACK})
    with pytest.raises(NoFootageError):
        playlist(world, fresh, T0 + 70 * 1_000_000, T0 + 110 * 1_000_000)
    assert world.audit.search(action="playlist")[0].outcome == "empty"
    served = [e for e in world.audit.search(action="playlist", limit=1000) if e.outcome == "ok"]
    assert served == []  # every bad request above was refused before anything was served


def test_delegation_city_to_county_to_officer_via_the_cli(world: World, tmp_path: Path) -> None:
    out = io.StringIO()
    keys = tmp_path / "county-keys"
    with contextlib.redirect_stdout(out):
        assert main(["grant", "keygen", "--out", str(keys), "--name", "chengxian"]) == 0
        assert main(["grant", "keygen", "--out", str(keys), "--name", "chengxian"]) == 1
    county_token = tmp_path / "county.token"
    common = [
        "--ops",
        "playback,download",
        "--from",
        "2026-01-01T00:00:00Z",
        "--to",
        "2026-01-01T02:00:00Z",
        "--purpose",
        "county share",
    ]
    with contextlib.redirect_stdout(out):
        assert (
            main(
                [
                    "grant",
                    "mint",
                    "--data-dir",
                    str(world.data),
                    "--as-user",
                    "admin-1",
                    "--holder-org",
                    "chengxian",
                    "--holder-key",
                    str(keys / "chengxian.pub"),
                    "--area",
                    "陇南市/成县",
                    *common,
                    "--out",
                    str(county_token),
                ]
            )
            == 0
        )
    assert stat.S_IMODE(os.stat(county_token).st_mode) == 0o600
    officer_token = tmp_path / "officer.token"
    narrow = [
        "--ops",
        "playback",
        "--from",
        "2026-01-01T00:00:00Z",
        "--to",
        "2026-01-01T01:00:00Z",
        "--purpose",
        "incident 17",
    ]
    base = [
        "grant",
        "delegate",
        "--parent",
        str(county_token),
        "--key",
        str(keys / "chengxian.key"),
        "--holder-org",
        "chengxian",
        "--holder-user",
        "officer-1",
        "--camera",
        "cam-01",
    ]
    with contextlib.redirect_stdout(out):
        assert main([*base, *narrow, "--out", str(officer_token)]) == 0
        # Wider than the parent: refused by the delegating tool already.
        assert main([*base, "--ops", "live", *narrow[2:], "--out", str(tmp_path / "x")]) == 1
    # A camera-scoped root grant straight to an officer, the camera looked up in the catalog.
    direct = ["--holder-org", "chengxian", "--holder-user", "officer-1", "--camera", "cam-01"]
    mint = ["grant", "mint", "--data-dir", str(world.data), "--as-user", "admin-1"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*mint, *direct, *narrow, "--out", str(tmp_path / "direct.token")]) == 0
        assert main([*mint, *direct[:-1], "wd-01", *narrow]) == 1  # 武都区's camera
        assert world.audit.search(action="grant_mint")[0].reason == "not_entitled"
        assert main([*mint, *direct[:-1], "no-such-camera", *narrow]) == 1
    root_pub = keys_dir(world.data) / "grant_root.pub"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["grant", "inspect", str(officer_token), "--root-key", str(root_pub)]) == 0
    assert "VALID" in out.getvalue() and "officer-1" in out.getvalue()
    token = officer_token.read_text().strip()
    # The CLI minted and delegated on the real clock: move the services' clock there.
    chain = decode_token(token)
    world.clock._now_us = chain.leaf.not_before_us + 1
    text = playlist(world, token, T0, T0 + HOUR_US)
    assert len(urls(text)) == 12
    delegated = world.audit.search(action="grant_delegated")
    assert [e.grant_id for e in delegated] == [chain.leaf.grant_id]
    # A child forged wider than its parent with the county's own key: refused, audited.
    county_key = load_private(keys / "chengxian.key")
    county = decode_token(county_token.read_text().strip()).links[0]
    wide = sign_grant(
        replace(
            chain.leaf,
            grant_id="ab" * 16,
            footage_to_us=county.body.footage_to_us + HOUR_US,
            case_id="CX-1",
        ),
        county_key,
    )
    refusal(world, Reason.WIDENED, playlist, world, encode_token([county, wide]))
    # Revoking the county's grant (the ancestor) stops the officer's.
    with contextlib.redirect_stdout(io.StringIO()):
        assert (
            main(
                [
                    "grant",
                    "revoke",
                    "--data-dir",
                    str(world.data),
                    "--grant-id",
                    chain.root.grant_id,
                    "--as-user",
                    "admin-1",
                    "--reason",
                    "test",
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "grant",
                    "revocations",
                    "--data-dir",
                    str(world.data),
                    "--out",
                    str(tmp_path / "crl.bin"),
                ]
            )
            == 0
        )
    world.clock.advance(REVOKED_CACHE_S)
    with pytest.raises(GrantRefused) as info:
        playlist(world, token, T0, T0 + HOUR_US)
    assert info.value.reason is Reason.REVOKED and "ancestor" in info.value.message
    # The county checks the officer's token offline with the published list.
    out = io.StringIO()
    crl = ["--root-key", str(root_pub), "--revocations", str(tmp_path / "crl.bin")]
    with contextlib.redirect_stdout(out):
        assert main(["grant", "inspect", str(officer_token), *crl]) == 1
    assert "INVALID: revoked" in out.getvalue()


def test_logins_and_admin_changes_are_audited(world: World) -> None:
    world.grants.record_login("officer-1", "chengxian", True, {"ip": "10.0.0.7"})
    world.grants.record_login("officer-1", "chengxian", False, {"ip": "10.0.0.8", "why": "bad otp"})
    world.grants.record_admin_change(CITY_ADMIN, "policy", {"entitlement": "gongan += I"})
    logins = world.audit.search(user="officer-1", action="login")
    assert [e.outcome for e in logins] == ["refused", "ok"]
    change = world.audit.search(action="admin_change")[0]
    assert change.actor_user == "admin-1" and "gongan += I" in change.detail


def test_keys_are_private_and_never_replaced(tmp_path: Path) -> None:
    assert sorted(ensure_keys(tmp_path)) == ["evidence", "grant_root", "url_hmac"]
    before = {p.name: p.read_bytes() for p in keys_dir(tmp_path).iterdir()}
    assert ensure_keys(tmp_path) == []
    for path in keys_dir(tmp_path).iterdir():
        assert path.read_bytes() == before[path.name]
        if path.suffix == ".key":
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys_dir(tmp_path).stat().st_mode) == 0o700
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["keys", "--data-dir", str(tmp_path)]) == 0
    assert "created nothing" in out.getvalue()
    (keys_dir(tmp_path) / "grant_root.key").write_text("not a key")
    with contextlib.redirect_stdout(out):
        assert main(["keys", "--data-dir", str(tmp_path)]) == 1
