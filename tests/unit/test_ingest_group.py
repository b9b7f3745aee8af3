"""Group commit of catalog rows (controller/ingest/group.py): concurrent rows share one
transaction, every row is written exactly once, and a failing batch is retried row by row
so each upload gets its own answer."""

from __future__ import annotations

import threading
from contextlib import nullcontext
from typing import Any, cast

import pytest

from controller.catalog import CatalogUnavailableError, DuplicateSegmentError
from controller.ingest.group import GroupCommit


class FakeCatalog:
    def __init__(self, duplicates: frozenset[str] = frozenset()) -> None:
        self.batches: list[list[str]] = []
        self.singles: list[str] = []
        self.written: list[str] = []
        self.duplicates = duplicates
        self.first_started = threading.Event()
        self.release_first = threading.Event()

    def add_segments(self, rows: list[Any], media: list[Any]) -> None:
        assert len(rows) == len(media)
        if not self.batches:
            self.first_started.set()
            assert self.release_first.wait(10)
        self.batches.append(list(rows))
        if self.duplicates.intersection(rows):
            raise DuplicateSegmentError(sorted(self.duplicates.intersection(rows))[0])
        self.written += rows

    def add_segment(self, row: Any, media: Any) -> None:
        self.singles.append(row)
        if row in self.duplicates:
            raise DuplicateSegmentError(row)
        self.written.append(row)


def _run(group: GroupCommit, rows: list[str]) -> dict[str, BaseException | None]:
    answers: dict[str, BaseException | None] = {}

    def one(row: str) -> None:
        try:
            group.add(cast(Any, row), cast(Any, f"media-{row}"))
            answers[row] = None
        except BaseException as exc:
            answers[row] = exc

    threads = [threading.Thread(target=one, args=(r,)) for r in rows]
    threads[0].start()
    return_first = threads[0]
    fake = cast(FakeCatalog, group._catalog)
    assert fake.first_started.wait(10)  # the first row is being written alone...
    for t in threads[1:]:
        t.start()
    waiting = lambda: len(group._queue) == len(rows) - 1  # noqa: E731
    for _ in range(1000):
        if waiting():
            break
        threading.Event().wait(0.005)
    assert waiting()  # ...while the others queue behind it
    fake.release_first.set()
    for t in [return_first, *threads[1:]]:
        t.join(10)
    return answers


def test_rows_that_arrive_while_one_is_written_go_in_one_transaction() -> None:
    fake = FakeCatalog()
    group = GroupCommit(cast(Any, fake), nullcontext())
    rows = [f"s{i}" for i in range(9)]
    answers = _run(group, rows)
    assert answers == dict.fromkeys(rows)
    assert len(fake.batches) == 2 and fake.batches[0] == ["s0"]
    assert sorted(fake.batches[1]) == sorted(rows[1:])  # eight rows, one transaction
    assert sorted(fake.written) == sorted(rows)  # each once
    assert fake.singles == []


def test_a_failing_batch_is_written_row_by_row_each_getting_its_answer() -> None:
    fake = FakeCatalog(duplicates=frozenset({"s3"}))
    group = GroupCommit(cast(Any, fake), nullcontext())
    rows = [f"s{i}" for i in range(6)]
    answers = _run(group, rows)
    assert isinstance(answers.pop("s3"), DuplicateSegmentError)
    assert answers == dict.fromkeys(answers)  # every other row committed
    assert sorted(fake.written) == sorted(r for r in rows if r != "s3")
    assert sorted(fake.singles) == sorted(rows[1:])  # the failed batch, one by one


def test_a_lone_row_raises_what_the_catalog_raised() -> None:
    class Down(FakeCatalog):
        def add_segments(self, rows: list[Any], media: list[Any]) -> None:
            raise CatalogUnavailableError("database down")

    group = GroupCommit(cast(Any, Down()), nullcontext())
    with pytest.raises(CatalogUnavailableError):
        group.add(cast(Any, "s1"), cast(Any, "m1"))
    assert group._queue == [] and not group._busy  # the next row leads again
