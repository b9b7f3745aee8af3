"""The port of a server with several accept loops (controller/grpcserver/ports.py): parsed,
rewritten, and claimed only when nothing listens on it."""

from __future__ import annotations

import socket

import pytest

from controller.grpcserver.ports import claim_port, split_listen, with_port


def test_listen_addresses_are_split_and_their_port_replaced() -> None:
    assert split_listen("127.0.0.1:50051") == ("127.0.0.1", 50051)
    assert split_listen("[::]:0") == ("::", 0)
    assert split_listen(":7000") == ("", 7000)
    assert with_port("[::1]:0", 6000) == "[::1]:6000"
    assert with_port("localhost:0", 6001) == "localhost:6001"
    for bad in ("127.0.0.1", "host:port", ""):
        with pytest.raises(ValueError):
            split_listen(bad)


def test_a_free_port_is_claimed_and_a_listening_one_is_not() -> None:
    port = claim_port("127.0.0.1:0")
    assert port is not None and port > 0
    assert claim_port(f"127.0.0.1:{port}") == port  # the probe let it go again
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        assert claim_port(f"127.0.0.1:{taken}") is None


def test_a_port_shared_by_reuseport_listeners_is_not_claimed() -> None:
    """What another process's accept loops hold cannot be joined (the guard of SO_REUSEPORT)."""
    with socket.socket() as shared:
        shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        shared.bind(("127.0.0.1", 0))
        shared.listen()
        assert claim_port(f"127.0.0.1:{shared.getsockname()[1]}") is None


def test_an_address_that_cannot_be_resolved_or_bound_is_not_claimed() -> None:
    assert claim_port("no-such-host.invalid:0") is None
    assert claim_port("192.0.2.1:0") is None  # not an address of this machine
    assert claim_port("127.0.0.1") is None
