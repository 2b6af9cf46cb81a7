"""What the central link needs from the store layer, as protocols.

The bootstrap hands the link objects of ``bibbox.locker.store`` that fit
these shapes; central/ itself never imports the store.  Their methods raise
:class:`~bibbox.locker.domain.errors.StoreError` when the database fails.
"""

from __future__ import annotations

from typing import Callable, Iterable, Protocol


class OutboxReader(Protocol):
    """The outbox on a connection of its own (one thread)."""

    def depth(self) -> int: ...

    def batch(self, after_seq: int = 0, limit: int = 100) -> list[dict]: ...

    def delete(self, seqs: Iterable[int]) -> None: ...

    def close(self) -> None: ...


class OutboxStore(Protocol):
    """The locker's store as the link sees it."""

    on_commit: list[Callable]       # called with each commit's events

    def outbox_reader(self) -> OutboxReader: ...


class AnswerStore(Protocol):
    """The persistent half of the command answer book (``central.db``)."""

    def lookup(self, request_id: str) -> tuple[str, str] | None: ...

    def add(self, rows: list[tuple], *, keep: int | None = None) -> None: ...

    def close(self) -> None: ...
