"""What the controller remembers about grants, on SQLite and PostgreSQL: revocations with
their list sequence, single-use downloads that stay single-use under races, grants seen."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from controller.catalog import make_engine
from controller.grants.codec import Chain, raw_public_key
from controller.grants.errors import GrantRefused, Reason
from controller.grants.model import HOUR_US, Operation
from controller.grants.store import GrantStore
from controller.grants.testing import GrantKit, new_grant_id


@pytest.fixture
def engine(catalog_url: str) -> Iterator[Engine]:
    eng = make_engine(catalog_url)
    yield eng
    eng.dispose()


def test_revocations_have_a_growing_sequence_and_are_idempotent(engine: Engine) -> None:
    store = GrantStore(engine)
    now = 1_767_225_600_000_000
    assert store.revocations(now).sequence == 0
    a, b = new_grant_id(), new_grant_id()
    seq_a, new_a = store.revoke(a, now, "admin", "left", now + HOUR_US)
    seq_b, _ = store.revoke(b, now, "admin", "lost phone", None)
    assert new_a and seq_b > seq_a
    assert store.revoke(a, now, "admin", "again", None) == (seq_a, False)
    listed = store.revocations(now)
    assert listed.sequence == seq_b and listed.revoked == {a, b}
    # Once a revoked grant has expired anyway, it drops off the list; the sequence stays.
    later = store.revocations(now + 2 * HOUR_US)
    assert later.revoked == {b} and later.sequence == seq_b


def test_single_use_download_survives_a_race(engine: Engine) -> None:
    kit = GrantKit()
    chain = Chain((kit.root_link(operations=frozenset({Operation.DOWNLOAD}), download_limit=1),))
    stores = [GrantStore(engine), GrantStore(engine)]
    results: list[str] = []
    lock = threading.Lock()

    def attempt(store: GrantStore) -> None:
        try:
            store.consume_download(chain)
            outcome = "ok"
        except GrantRefused as exc:
            outcome = exc.reason.value
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=attempt, args=(stores[i % 2],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == ["ok"] + [Reason.USES_EXHAUSTED.value] * 5
    assert stores[0].uses(chain.leaf.grant_id) == 1


def test_delegated_children_share_their_parents_limit(engine: Engine) -> None:
    kit = GrantKit()
    county = Ed25519PrivateKey.generate()
    ops = frozenset({Operation.DOWNLOAD})
    root = kit.root_link(holder_public_key=raw_public_key(county), operations=ops, download_limit=2)
    children = [kit.child_of(root, county, download_limit=1) for _ in range(3)]
    store = GrantStore(engine)
    store.consume_download(Chain((root, children[0])))
    store.consume_download(Chain((root, children[1])))
    with pytest.raises(GrantRefused) as info:
        store.consume_download(Chain((root, children[2])))
    assert info.value.reason is Reason.USES_EXHAUSTED and root.body.grant_id in info.value.message
    assert store.uses(children[2].body.grant_id) == 0  # all or nothing


def test_grants_seen_once(engine: Engine) -> None:
    kit = GrantKit()
    chain, _, _ = kit.chain3()
    store = GrantStore(engine)
    assert store.record_seen(Chain(chain.links[:1]), kit.now_us) == [chain.root.grant_id]
    assert store.record_seen(chain, kit.now_us) == list(chain.grant_ids[1:])
    assert store.record_seen(chain, kit.now_us) == []
    assert store.expiry_of(chain.leaf.grant_id) == chain.leaf.expires_us
    assert store.children_of([chain.root.grant_id]) == [chain.grant_ids[1]]
