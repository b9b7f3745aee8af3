"""release_when_done: the place is given back and a cancelled call's thread error is retrieved."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any

from controller.grpcserver.settle import release_when_done


def _orphaned_failure(callback: Callable[[asyncio.Future[Any]], None]) -> list[str]:
    """A worker's future fails with nobody awaiting it; what the loop's handler reports."""
    reported: list[str] = []

    async def call() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _l, ctx: reported.append(ctx["message"]))
        work: asyncio.Future[Any] = loop.create_future()
        work.add_done_callback(callback)
        work.set_exception(RuntimeError("upload cut at shutdown"))
        await asyncio.sleep(0.01)  # callbacks run
        del work
        gc.collect()
        await asyncio.sleep(0.01)

    asyncio.run(call())
    return reported


def test_without_it_asyncio_reports_a_never_retrieved_exception() -> None:
    assert any("never retrieved" in m for m in _orphaned_failure(lambda _: None))


def test_release_when_done_releases_and_retrieves() -> None:
    released: list[int] = []
    assert _orphaned_failure(release_when_done(lambda: released.append(1))) == []
    assert released == [1]
