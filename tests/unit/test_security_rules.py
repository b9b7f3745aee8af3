"""The pure decisions behind issue 10's fixes: who may revoke, login budgets, the client
address behind trusted proxies, refusal aggregation, private file modes, known-client tokens
and the managed broker's configuration text. No I/O."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.api.deps import query_session_allowed, settings_from_config
from controller.api.limits import (
    LoginBudgets,
    forwarded_client,
    login_gate,
    login_keys,
    parse_proxies,
    wait_s,
)
from controller.audit.aggregate import OVERFLOW_SOURCE, RefusalAggregator
from controller.catalog.db import permission_fix
from controller.config import ConfigError, parse_config
from controller.fleet.broker import BrokerSettings, config_text
from controller.fleet.ratelimit import Bucket, RatePolicy, take
from controller.grants.errors import GrantRefused, Reason
from controller.grants.revocation import Lineage, check_revoker
from controller.users.sessions import issue_known_client, known_client_id
from edge_agent.store.opening import private_mode

CITY = "city"
# city -> chengxian (root), chengxian -> zongzhi (delegated), zongzhi -> gongan (delegated)
ROOT = Lineage("a" * 32, (("city", "chengxian"),))
CHILD = Lineage("b" * 32, (("chengxian", "zongzhi"), ("city", "chengxian")))
GRANDCHILD = Lineage(
    "c" * 32, (("zongzhi", "gongan"), ("chengxian", "zongzhi"), ("city", "chengxian"))
)


def reason(lineage: Lineage | None, org: str, admin: bool = True, listed: int = 0) -> str:
    try:
        check_revoker(lineage, org, admin, CITY, listed, max_listed=10)
    except GrantRefused as exc:
        return exc.reason.value
    return "ok"


@pytest.mark.parametrize(
    ("lineage", "org", "expected"),
    [
        (ROOT, "city", "ok"),  # the city admin, always
        (ROOT, "chengxian", "ok"),  # the holder
        (ROOT, "wudu", "wrong_holder"),  # another county
        (ROOT, "zongzhi", "wrong_holder"),
        (CHILD, "chengxian", "ok"),  # the issuer (holder of the parent)
        (CHILD, "zongzhi", "ok"),  # its own holder
        (CHILD, "gongan", "wrong_holder"),
        (GRANDCHILD, "chengxian", "ok"),  # a holder up the chain
        (GRANDCHILD, "wudu", "wrong_holder"),
        (GRANDCHILD, "city", "ok"),
    ],
)
def test_who_may_revoke(lineage: Lineage, org: str, expected: str) -> None:
    assert reason(lineage, org) == expected


def test_revocation_refusals() -> None:
    assert reason(ROOT, "city", admin=False) == Reason.ROLE_NOT_ALLOWED
    assert reason(None, "city") == Reason.UNKNOWN_GRANT  # never issued: not listed
    assert reason(Lineage("d" * 32, ()), "city") == Reason.UNKNOWN_GRANT
    assert reason(ROOT, "city", listed=10) == Reason.LIST_FULL  # the list stays bounded
    check_revoker(ROOT, "city", True, CITY, 10, already_revoked=True, max_listed=10)  # idempotent


BUDGETS = LoginBudgets(
    per_address=RatePolicy(1 / 30, 3.0),
    per_user=RatePolicy(1 / 60, 2.0),
    per_known_client=RatePolicy(0.1, 2.0),
)


def charged(buckets: dict[str, Bucket | None], keys: dict[str, str], now: float) -> None:
    for name, key in keys.items():
        buckets[key] = take(buckets.get(key), now, getattr(BUDGETS, name))[1]


def test_login_budgets_per_address_per_user_and_known_client() -> None:
    buckets: dict[str, Bucket | None] = {}
    # Spraying from one address: three failures, then the address is refused for any user.
    for user in ("u1", "u2", "u3"):
        assert login_gate(buckets, "10.0.0.1", user, "", 0.0, BUDGETS).allowed
        charged(buckets, login_keys("10.0.0.1", user, ""), 0.0)
    gate = login_gate(buckets, "10.0.0.1", "u4", "", 0.0, BUDGETS)
    assert not gate.allowed and gate.budget == "per_address"
    assert gate.retry_after_s == pytest.approx(30.0)  # the backoff: one more per 30 s
    assert login_gate(buckets, "10.0.0.1", "u4", "", 30.0, BUDGETS).allowed
    assert login_gate(buckets, "10.0.0.2", "u4", "", 0.0, BUDGETS).allowed  # others unaffected
    # Guessing one user from many addresses: the user's budget.
    for i in range(2):
        charged(buckets, login_keys(f"10.1.0.{i}", "owner", ""), 0.0)
    gate = login_gate(buckets, "10.1.0.9", "owner", "", 0.0, BUDGETS)
    assert not gate.allowed and gate.budget == "per_user"
    # The owner's known client is judged by its own budget: not locked out, even from an
    # address that is out of budget.
    assert login_gate(buckets, "10.0.0.1", "owner", "nonce-1", 0.0, BUDGETS).allowed
    for _ in range(2):
        charged(buckets, login_keys("10.0.0.1", "owner", "nonce-1"), 0.0)
    assert not login_gate(buckets, "10.0.0.1", "owner", "nonce-1", 0.0, BUDGETS).allowed
    assert login_gate(buckets, "10.0.0.1", "owner", "nonce-2", 0.0, BUDGETS).allowed


def test_wait_s() -> None:
    policy = RatePolicy(0.5, 2.0)
    assert wait_s(None, 0.0, policy) == 0.0
    assert wait_s(Bucket(0.0, 0.0), 0.0, policy) == pytest.approx(2.0)
    assert wait_s(Bucket(0.0, 0.0), 1.0, policy) == pytest.approx(1.0)
    assert wait_s(Bucket(0.0, 0.0), 5.0, policy) == 0.0


PROXIES = parse_proxies(["127.0.0.1", "10.9.0.0/16"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.5", [], "203.0.113.5"),
        ("203.0.113.5", ["1.2.3.4"], "203.0.113.5"),  # not a proxy: header ignored
        ("127.0.0.1", [], "127.0.0.1"),
        ("127.0.0.1", ["198.51.100.7"], "198.51.100.7"),
        ("127.0.0.1", ["6.6.6.6, 198.51.100.7"], "198.51.100.7"),  # the client's claim ignored
        ("127.0.0.1", ["198.51.100.7, 10.9.1.1"], "198.51.100.7"),  # through two proxies
        ("127.0.0.1", ["198.51.100.7", "10.9.1.1"], "198.51.100.7"),  # two header lines
        ("127.0.0.1", ["garbage, 198.51.100.7"], "198.51.100.7"),
        ("127.0.0.1", ["198.51.100.7, garbage"], "127.0.0.1"),
        ("127.0.0.1", ["2001:db8::1"], "2001:db8::1"),
    ],
)
def test_forwarded_client(peer: str, forwarded: list[str], expected: str) -> None:
    assert forwarded_client(peer, forwarded, PROXIES) == expected


def test_no_proxies_means_no_forwarding() -> None:
    assert forwarded_client("127.0.0.1", ["198.51.100.7"], ()) == "127.0.0.1"
    with pytest.raises(ValueError):
        parse_proxies(["not-an-address"])


def test_refusal_aggregator_writes_the_first_and_counts_the_rest() -> None:
    agg = RefusalAggregator(max_keys=2)
    assert agg.record("1.1.1.1", "playlist", "unauthenticated", "cam-1", 10)
    assert not any(
        agg.record("1.1.1.1", "playlist", "unauthenticated", "cam-1", 20 + i) for i in range(299)
    )
    assert agg.record("2.2.2.2", "login", "rate_limited", "u", 30)  # another key
    # Past max_keys, new sources share the overflow key (memory stays bounded).
    assert agg.record("3.3.3.3", "login", "rate_limited", "u", 40)
    assert not agg.record("4.4.4.4", "login", "rate_limited", "v", 50)
    assert len(agg) == 3
    events = agg.drain()
    by_source = {e.detail["source"]: e for e in events}
    assert set(by_source) == {"1.1.1.1", OVERFLOW_SOURCE}  # keys that only wrote their first: none
    flood = by_source["1.1.1.1"]
    assert (flood.action, flood.outcome, flood.reason) == ("playlist", "refused", "unauthenticated")
    assert flood.detail["count"] == 299 and flood.detail["samples"] == ["cam-1"]
    assert flood.detail["first_us"] == 10 and flood.detail["last_us"] == 318
    assert by_source[OVERFLOW_SOURCE].detail["count"] == 1
    assert agg.drain() == [] and len(agg) == 0
    assert agg.record("1.1.1.1", "playlist", "unauthenticated", "", 400)  # a new window


@pytest.mark.parametrize(
    ("mode", "is_dir", "expected"),
    [
        (0o100644, False, 0o600),
        (0o100600, False, None),
        (0o100640, False, 0o600),
        (0o100400, False, None),
        (0o100604, False, 0o600),
        (0o040755, True, 0o700),
        (0o040700, True, None),
        (0o040711, True, 0o700),
        (0o100664, False, 0o600),
    ],
)
def test_private_modes(mode: int, is_dir: bool, expected: int | None) -> None:
    assert permission_fix(mode, is_dir) == expected
    assert private_mode(mode, is_dir) == expected


def test_known_client_tokens() -> None:
    key = b"k" * 32
    token = issue_known_client(key, "officer-1")
    nonce = known_client_id(key, "officer-1", token)
    assert len(nonce) == 16 and token.startswith("kc1.")
    assert known_client_id(key, "officer-2", token) == ""  # bound to the user
    assert known_client_id(b"x" * 32, "officer-1", token) == ""  # and to the key
    tampered = token[:-1] + ("B" if token.endswith("A") else "A")  # never the same token
    for bad in (None, "", "garbage", tampered, "kc1.é." + "a" * 43):
        assert known_client_id(key, "officer-1", bad) == ""


def test_query_sessions_only_for_media_gets() -> None:
    assert query_session_allowed("GET", "/play/cam-1.m3u8")
    assert query_session_allowed("GET", "/play/seg/x.ts")
    assert not query_session_allowed("POST", "/play/cam-1.m3u8")
    assert not query_session_allowed("GET", "/api/v1/cameras")
    assert not query_session_allowed("POST", "/api/v1/grants")
    assert query_session_allowed("GET", "/api/v1/live/cam-1/hls/index.m3u8")  # native players
    assert not query_session_allowed("POST", "/api/v1/live/cam-1/hls/index.m3u8")
    assert not query_session_allowed("GET", "/api/v1/live/cam-1/ws")
    assert not query_session_allowed("GET", "/api/v1/live/cam-1/hls/live.cam-1.3.ts")


def test_broker_config_binds_client_ids_and_limits_packets() -> None:
    text = config_text(BrokerSettings(Path("/d"), 1883), Path("/d/passwd"), Path("/d/acl"))
    lines = text.splitlines()
    listener = lines.index("listener 1883 127.0.0.1")
    # A listener option: after the listener line, or Mosquitto opens 0.0.0.0:1883 for it.
    assert lines.index("use_username_as_clientid true") > listener
    assert "max_packet_size 263168" in lines and "allow_anonymous false" in lines


@pytest.mark.parametrize(
    ("http", "ok"),
    [
        ('listen = "127.0.0.1:8080"', True),
        ('listen = "[::1]:8080"', True),
        ('listen = "0.0.0.0:8080"', False),  # plain HTTP to the world
        ('listen = "10.1.2.3:8080"', False),
        ('listen = "0.0.0.0:8080"\ntls = true', True),
        ('listen = "0.0.0.0:8080"\ntrusted_proxies = ["10.0.0.5"]', True),  # behind a proxy
        ('listen = "0.0.0.0:8080"\nenabled = false', True),
        ('tls_cert = "/etc/x.crt"', False),  # a certificate without tls = true is a mistake
        ('trusted_proxies = ["bogus"]', False),
    ],
)
def test_http_listener_config(http: str, ok: bool) -> None:
    text = f"[http]\n{http}\n"
    if ok:
        parse_config(text, "controller.toml")
    else:
        with pytest.raises(ConfigError, match="http"):
            parse_config(text, "controller.toml")


def test_login_budgets_from_config() -> None:
    http = parse_config(
        "[http]\nlogin_failures_per_address = 50\nlogin_failures_per_user = 5\n"
        'trusted_proxies = ["10.0.0.0/8"]\n',
        "controller.toml",
    ).http
    settings = settings_from_config(http)
    assert settings.login_budgets.per_address.burst == 50
    assert settings.login_budgets.per_user.burst == 5
    assert settings.trusted_proxies == parse_proxies(["10.0.0.0/8"])
    assert settings.metrics_token == ""
    with pytest.raises(ConfigError):
        parse_config("[http]\nlogin_failures_per_user = 0\n", "controller.toml")
