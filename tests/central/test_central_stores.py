"""The store side of the central link, without a broker: the command answer
book in ``central.db`` (versioned, migrated, a file of the old shape still
opens), the outbox reader the sender drains through, and the refusal error
in the one exception root."""

import sqlite3

import pytest

from bibbox.central.commands import MAX_REMEMBERED, PRUNE_EVERY, AnswerBook
from bibbox.locker.domain.errors import BibboxError, CommandError, CommandRefused, StoreError
from bibbox.locker.domain.model import EventType
from bibbox.locker.store.central import SCHEMA_VERSION, AnswerStore
from tests.domain_helpers import Rig


def old_central_db(path, rows):
    """``central.db`` exactly as the link wrote it before it was versioned."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS answered ("
                 "request_id TEXT PRIMARY KEY, command TEXT NOT NULL, "
                 "answered_at REAL NOT NULL, response TEXT NOT NULL)")
    conn.execute("CREATE INDEX IF NOT EXISTS answered_at ON answered (answered_at)")
    conn.executemany("INSERT INTO answered VALUES (?,?,?,?)", rows)
    conn.close()


def user_version(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def test_a_central_db_of_the_old_shape_opens_migrates_and_keeps_its_answers(tmp_path):
    path = tmp_path / "bibbox.central.db"
    old_central_db(path, [("r1", "get_state", 1.0, '{"status":"ok"}')])
    assert user_version(path) == 0
    store = AnswerStore(path)
    assert store.lookup("r1") == ("get_state", '{"status":"ok"}')
    assert store.lookup("nope") is None
    store.close()
    assert user_version(path) == SCHEMA_VERSION
    again = AnswerStore(path)                  # a second open migrates nothing
    assert again.lookup("r1") == ("get_state", '{"status":"ok"}')
    again.close()


def test_a_central_db_from_newer_software_is_refused(tmp_path):
    path = tmp_path / "bibbox.central.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        AnswerStore(path).lookup("r1")


def test_the_first_answer_stays_and_keep_forgets_the_oldest(tmp_path):
    store = AnswerStore(tmp_path / "c.db")
    store.add([("a", "get_state", 1.0, "first"), ("b", "get_state", 2.0, "b")])
    store.add([("a", "get_state", 3.0, "second"), ("c", "get_state", 4.0, "c")], keep=2)
    assert store.lookup("a") is None                   # the oldest, forgotten
    assert [store.lookup(r)[1] for r in ("b", "c")] == ["b", "c"]
    assert store.count() == 2
    store.add([("b", "expire_now", 5.0, "other")])
    assert store.lookup("b") == ("get_state", "b")     # a replay never overwrites
    store.close()


class FlakyStore:
    """An answer store whose first ``fail`` writes fail."""

    def __init__(self, fail):
        self.fail, self.rows, self.keeps = fail, [], []

    def lookup(self, request_id):
        raise StoreError("disk gone")

    def add(self, rows, *, keep=None):
        if self.fail:
            self.fail -= 1
            raise StoreError("disk full")
        self.rows += rows
        self.keeps.append(keep)

    def close(self):
        pass


def test_answers_that_cannot_be_saved_are_kept_for_the_next_flush():
    store = FlakyStore(fail=1)
    book = AnswerBook(store)
    book.record("r1", "get_state", "{}", 1.0)
    book.flush()
    assert store.rows == []
    assert book.lookup("r1") == ("get_state", "{}")    # from memory
    assert book.lookup("r2") is None                   # a failing store reads as unknown
    book.flush()
    assert [r[0] for r in store.rows] == ["r1"]


def test_the_answer_store_is_pruned_every_so_many_answers():
    store = FlakyStore(fail=0)
    book = AnswerBook(store)
    for i in range(PRUNE_EVERY):
        book.record(f"r{i}", "get_state", "{}", float(i))
        book.flush()
    assert store.keeps == [None] * (PRUNE_EVERY - 1) + [MAX_REMEMBERED]


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    r.start()
    yield r
    r.store.close()


def emit(rig, n):
    for i in range(n):
        with rig.store.unit() as unit:
            unit.event(EventType.DOOR_CLOSED, {"compartment": 1 + i % 2})


def test_the_outbox_reader_counts_reads_in_order_and_deletes_only_what_it_is_told(rig):
    emit(rig, 5)
    reader = rig.store.outbox_reader()
    try:
        assert reader.depth() == rig.store.outbox_depth() == 5
        rows = reader.batch(after_seq=0, limit=3)
        seqs = [r["seq"] for r in rows]
        assert seqs == sorted(seqs) and len(seqs) == 3
        assert [r["seq"] for r in reader.batch(after_seq=seqs[-1], limit=10)] \
            == [seqs[-1] + 1, seqs[-1] + 2]
        reader.delete([seqs[0], seqs[2]])
        assert reader.depth() == rig.store.outbox_depth() == 3
        assert [r["seq"] for r in rig.store.outbox_batch(limit=10)][:2] == [seqs[1],
                                                                             seqs[2] + 1]
    finally:
        reader.close()


def test_the_outbox_reader_turns_database_errors_into_store_errors(rig):
    reader = rig.store.outbox_reader()
    reader.close()
    for call in (reader.depth, lambda: reader.batch(0, 1), lambda: reader.delete([1])):
        with pytest.raises(StoreError):
            call()


def test_a_refused_command_is_a_command_error_of_the_one_root():
    exc = CommandRefused("stale", "sent_at is far off")
    assert isinstance(exc, CommandError) and isinstance(exc, BibboxError)
    assert isinstance(exc, ValueError)
    assert exc.code == "stale" and str(exc) == "sent_at is far off"
