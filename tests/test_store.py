"""The operational store on SQLite (embedded default) and on PostgreSQL (teams), same code."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, delete, insert, select, text
from sqlalchemy.exc import IntegrityError

from serein.store import (LABEL_WAIT_SECONDS, ROWS_PER_INSERT, SQLITE_PAGE_SIZE, OperationalStore, feedback,
                          predictions)

PG_URI = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_schema() -> Iterator[str]:
    try:
        admin = create_engine(PG_URI)
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # no driver or no server: this backend is not available here
        pytest.skip(f"PostgreSQL not reachable at {PG_URI}: {type(exc).__name__}")
    schema = f"serein_test_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(text(f"create schema {schema}"))
    try:
        yield f"{PG_URI}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"drop schema {schema} cascade"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[OperationalStore]:
    if request.param == "sqlite":
        yield OperationalStore(f"sqlite:///{tmp_path}/ops.db")
        return
    yield from _postgres_store()


@pytest.fixture
def postgres_store() -> Iterator[OperationalStore]:
    yield from _postgres_store()


def _postgres_store() -> Iterator[OperationalStore]:
    gen = _postgres_schema()
    uri = next(gen)
    s = OperationalStore(uri)
    try:
        yield s
    finally:
        s.engine.dispose()
        next(gen, None)


def _record(rid: str, row: int, ts: float, x: float) -> dict:
    return {"request_id": rid, "row": row, "model": "m", "version": 1, "ts": ts,
            "inputs": {"x": x, "c": "a"}, "prediction": int(x > 0), "probabilities": [0.3, 0.7],
            "score": 0.7, "latency_ms": 1.5}


def test_log_window_and_feedback_join(store: OperationalStore) -> None:
    store.log_predictions([_record("r1", 0, 100.0, 1.0), _record("r1", 1, 100.0, -1.0), _record("r2", 0, 200.0, 2.0)])
    store.log_predictions([{**_record("s1", 0, 150.0, 3.0), "shadow": True}])
    assert store.count_predictions("m") == 4
    assert store.request_rows(["r1", "r2", "nope"]) == {"r1": ("m", 2), "r2": ("m", 1)}

    store.add_feedback([{"request_id": "r1", "row": 1, "model": "m", "label": 0}])
    store.add_feedback([{"request_id": "r1", "row": 1, "model": "m", "label": 1}])  # a later correction wins
    rows = store.prediction_rows("m")
    assert [(r["request_id"], r["row"]) for r in rows] == [("r1", 0), ("r1", 1), ("r2", 0)]  # shadow left out
    assert [r["label"] for r in rows] == [None, 1, None]
    assert rows[0]["inputs"] == {"x": 1.0, "c": "a"} and rows[0]["probabilities"] == [0.3, 0.7]

    assert [r["request_id"] for r in store.prediction_rows("m", since=150.0)] == ["r2"]
    assert [r["request_id"] for r in store.prediction_rows("m", until=150.0)] == ["r1", "r1"]
    assert [r["row"] for r in store.prediction_rows("m", last=2)] == [1, 0]
    labelled = store.prediction_rows("m", labelled_only=True)
    assert len(labelled) == 1 and labelled[0]["label"] == 1
    assert store.prediction_rows("m", after_id=labelled[0]["id"]) == [rows[2]]


def test_a_later_label_replaces_the_earlier_one_and_counts_once(store: OperationalStore) -> None:
    store.log_predictions([_record("r1", 0, 100.0, 1.0), _record("r1", 1, 100.0, -1.0)])
    label = {"request_id": "r1", "row": 1, "model": "m"}
    assert store.add_feedback([{**label, "label": 1}, {**label, "label": 0}]) == 2  # later in one call wins
    assert store.add_feedback([{**label, "label": 1, "ts": 300.0}]) == 1
    assert store.count_feedback("m") == 1
    stream = store.labelled_after("m")
    assert [(r["feedback_id"], r["label"]) for r in stream] == [(stream[0]["feedback_id"], 1)]
    store.add_feedback([{**label, "label": 0}])  # a correction after the stream read the row
    assert store.labelled_after("m", after_feedback_id=stream[0]["feedback_id"]) == []
    assert [r["label"] for r in store.prediction_rows("m", labelled_only=True)] == [0]


def test_the_error_stream_waits_for_a_label_whose_prediction_is_on_its_way(store: OperationalStore) -> None:
    """A server accepts a label while its prediction is still in the prediction log: the stream
    ends before it until the prediction is shipped, so a reader moving its watermark to the last
    label it got (the detectors) never passes over it; one whose prediction never comes is passed
    over after ``wait`` seconds."""
    store.log_predictions([_record("old", 0, 100.0, 1.0)])
    store.add_feedback([{"request_id": "new", "row": 0, "model": "m", "label": 1}])  # its prediction: not shipped
    store.add_feedback([{"request_id": "old", "row": 0, "model": "m", "label": 0}])
    assert store.labelled_after("m") == []
    store.log_predictions([_record("new", 0, 200.0, 2.0)])  # shipped
    stream = store.labelled_after("m")
    assert [(r["label"], r["prediction"]) for r in stream] == [(1, 1), (0, 1)]
    watermark = stream[-1]["feedback_id"]
    store.add_feedback([{"request_id": "lost", "row": 0, "model": "m", "label": 1}])  # never shipped
    store.log_predictions([_record("late", 0, 300.0, -1.0)])
    store.add_feedback([{"request_id": "late", "row": 0, "model": "m", "label": 0}])
    assert store.labelled_after("m", watermark) == []
    later = time.time() + LABEL_WAIT_SECONDS + 1
    assert [r["prediction"] for r in store.labelled_after("m", watermark, now=later)] == [0]


def _follow(store: OperationalStore, table: str, state: dict) -> list[int]:
    """One read of a reader moving a watermark over ``table``'s ids, as the detectors' score stream
    does: the ids it takes, its state updated."""
    settled, state["gap"] = store.settled_upto(table, state["watermark"], state.get("gap"))
    column = {"predictions": predictions.c.id, "feedback": feedback.c.id}[table]
    with store.engine.connect() as conn:
        taken = list(conn.execute(select(column).where(column > state["watermark"], column <= settled)
                                  .order_by(column)).scalars())
    state["watermark"] = settled
    return taken


def _insert(conn, table: str, key: str) -> int:
    """A row of ``table`` inserted in ``conn``'s transaction; its id."""
    if table == "predictions":
        row = {"request_id": key, "row": 0, "model": "m", "version": 1, "ts": 1.0, "inputs": "{}", "prediction": "1",
               "shadow": False}
        return conn.execute(insert(predictions).values(row).returning(predictions.c.id)).scalar_one()
    return conn.execute(insert(feedback).values(request_id=key, row=0, model="m", label="1", ts=1.0)
                        .returning(feedback.c.id)).scalar_one()


@pytest.mark.parametrize("table", ["predictions", "feedback"])
def test_a_reader_of_ids_waits_for_those_committed_out_of_order(postgres_store: OperationalStore, table: str) -> None:
    """Concurrent writers commit ids out of order on PostgreSQL (several servers' shippers and
    feedback requests): id 1 is still in its transaction when id 2 is visible. A reader moving its
    watermark to the last id it saw would pass over id 1 for good; it reads up to the settled ids
    only, and takes id 1 once it is committed — or passes its gap once the transaction that
    held it is over (rolled back). A transaction begun after the gap was seen cannot hold it.
    (SQLite has one writer at a time: its ids commit in order.)"""
    store = postgres_store
    state: dict = {"watermark": 0}
    slow, later = store.engine.connect(), store.engine.connect()
    try:
        held = slow.begin()
        first = _insert(slow, table, "slow")
        with store.engine.begin() as conn:
            second = _insert(conn, table, "quick")
        assert _follow(store, table, state) == [] and state["gap"]["first"] == first
        held.commit()
        assert _follow(store, table, state) == [first, second]

        held = slow.begin()
        _insert(slow, table, "lost")
        with store.engine.begin() as conn:
            after = _insert(conn, table, "after")
        assert _follow(store, table, state) == []
        unrelated = later.begin()
        _insert(later, table, "unrelated")  # begun after the gap was seen: cannot hold it
        held.rollback()
        assert _follow(store, table, state) == [after] and state["gap"] is None
        unrelated.commit()
    finally:
        slow.close()
        later.close()


def test_gaps_in_the_ids_are_settled_at_once_on_sqlite(tmp_path) -> None:
    """With one writer at a time a missing id is lost for good (a row deleted, as an upgrade
    merging repeated labels does), and a reader passes it at once."""
    store = OperationalStore(f"sqlite:///{tmp_path}/ops.db")
    with store.engine.begin() as conn:
        ids = [_insert(conn, "feedback", key) for key in ("a", "b", "c")]
        conn.execute(delete(feedback).where(feedback.c.id == ids[1]))
    state: dict = {"watermark": 0}
    assert _follow(store, "feedback", state) == [ids[0], ids[2]] and state["gap"] is None


def test_an_earlier_store_with_repeated_labels_keeps_the_latest_under_the_first_id(store: OperationalStore) -> None:
    """A store an older serein wrote: a row per label received, corrections beside the labels
    they corrected; opening it makes them one row, and the later labels replace again."""
    store.log_predictions([_record("r1", 0, 100.0, 1.0), _record("r1", 1, 100.0, -1.0), _record("r2", 0, 200.0, 2.0)])
    with store.engine.begin() as conn:
        conn.execute(text("DROP INDEX uq_feedback_request_row"))
        for rid, row, label, ts in [("r1", 1, 0, 1.0), ("r2", 0, 1, 2.0), ("r1", 1, 1, 3.0), ("r1", 1, 0, 4.0)]:
            conn.execute(text('INSERT INTO feedback (request_id, "row", model, label, ts) VALUES (:r, :n, :m, :l, :t)'),
                         {"r": rid, "n": row, "m": "m", "l": str(label), "t": ts})
    first = store.labelled_after("m")[0]["feedback_id"]
    upgraded = OperationalStore(store.uri)
    try:
        stream = upgraded.labelled_after("m")
        assert [(r["id"], r["feedback_id"], r["label"]) for r in stream] == [(2, first, 0), (3, first + 1, 1)]
        with upgraded.engine.connect() as conn:
            assert conn.execute(text("SELECT ts FROM feedback WHERE request_id = 'r1'")).scalar_one() == 4.0
        upgraded.add_feedback([{"request_id": "r1", "row": 1, "model": "m", "label": 1}])
        assert upgraded.count_feedback("m") == 2
        assert [r["label"] for r in upgraded.prediction_rows("m")] == [None, 1, 1]
    finally:
        upgraded.engine.dispose()


def test_state_and_monitor_results(store: OperationalStore) -> None:
    assert store.get_state("k", 0) == 0
    store.set_state("k", {"upto": 3})
    store.set_state("k", {"upto": 7})
    assert store.get_state("k") == {"upto": 7}
    rid = store.add_monitor_result("m", 1, {"drifted": ["x"]}, n_rows=10, drifted=["x"],
                                   window_start=1.0, window_end=2.0, report_path=None)
    history = store.monitor_history("m")
    assert history[0]["id"] == rid and history[0]["drifted"] == ["x"] and history[0]["result"] == {"drifted": ["x"]}


def _table_rows(rid: str, n: int, shadow: bool = False) -> list[tuple]:
    """``n`` table rows of one request (``PREDICTION_COLUMNS`` order), row i predicting i % 3."""
    return [(rid, i, 100.0 + i, "m", 1, f'{{"x":{i},"c":"é"}}', str(i % 3), f"[{1 - i / 10},{i / 10}]", i / 10,
             0.5, shadow) for i in range(n)]


@pytest.mark.parametrize("n", [1, ROWS_PER_INSERT - 1, ROWS_PER_INSERT, 2 * ROWS_PER_INSERT + 5])
def test_table_rows_land_whole_and_in_order_in_blocks_and_the_rest(store: OperationalStore, n: int) -> None:
    assert store.log_prediction_rows(_table_rows("r", n)) == n
    rows = store.prediction_rows("m")
    assert [r["row"] for r in rows] == list(range(n)), "ids follow the rows' order"
    assert rows[-1]["inputs"] == {"x": n - 1, "c": "é"} and rows[-1]["prediction"] == (n - 1) % 3
    assert rows[-1]["probabilities"] == [1 - (n - 1) / 10, (n - 1) / 10] and rows[-1]["score"] == (n - 1) / 10
    assert store.request_rows(["r"]) == {"r": ("m", n)}


def test_reshipping_table_rows_once_adds_only_the_missing_ones(store: OperationalStore) -> None:
    first = _table_rows("a", 2 * ROWS_PER_INSERT + 3)
    assert store.log_prediction_rows(first[:70]) == 70  # a shipment committed, then the shipper died
    again = first + _table_rows("b", 2) + _table_rows("a", 2, shadow=True)
    assert store.log_prediction_rows(again, once=True) == len(first) - 70 + 4
    assert store.log_prediction_rows(again, once=True) == 0
    assert store.count_predictions("m") == len(first) + 4
    assert [r["row"] for r in store.prediction_rows("m")] == list(range(len(first))) + [0, 1]


def test_a_batch_refused_part_way_leaves_nothing_behind(store: OperationalStore) -> None:
    rows = _table_rows("r", 2 * ROWS_PER_INSERT + 5)
    rows[ROWS_PER_INSERT + 6] = rows[ROWS_PER_INSERT + 6][:3] + (None,) + rows[ROWS_PER_INSERT + 6][4:]  # no model
    with pytest.raises(IntegrityError):
        store.log_prediction_rows(rows)
    assert store.count_predictions() == 0, "the blocks before the refused row were rolled back with it"
    assert store.log_prediction_rows(_table_rows("r", 3)) == 3


def _page_size(store: OperationalStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())


def test_a_new_sqlite_store_has_large_pages_and_an_earlier_store_keeps_its_own(tmp_path) -> None:
    assert _page_size(OperationalStore(f"sqlite:///{tmp_path}/new.db")) == SQLITE_PAGE_SIZE
    earlier = sqlite3.connect(tmp_path / "earlier.db")  # as serein created stores before: 4 KiB pages
    earlier.execute("PRAGMA page_size=4096")
    earlier.execute("PRAGMA journal_mode=WAL")
    earlier.execute("CREATE TABLE predictions (id INTEGER NOT NULL, request_id VARCHAR(64) NOT NULL, "
                    '"row" INTEGER NOT NULL, ts FLOAT NOT NULL, model VARCHAR(200) NOT NULL, version INTEGER NOT NULL, '
                    "inputs TEXT NOT NULL, prediction TEXT NOT NULL, probabilities TEXT, score FLOAT, "
                    "latency_ms FLOAT, shadow BOOLEAN NOT NULL, PRIMARY KEY (id))")
    earlier.execute("INSERT INTO predictions VALUES (1, 'old', 0, 1.0, 'm', 1, '{\"x\":1}', '0', NULL, 0.1, 0.2, 0)")
    earlier.commit()
    earlier.close()
    store = OperationalStore(f"sqlite:///{tmp_path}/earlier.db")
    assert _page_size(store) == 4096
    assert store.log_prediction_rows(_table_rows("new", ROWS_PER_INSERT + 1)) == ROWS_PER_INSERT + 1
    assert [r["request_id"] for r in store.prediction_rows("m")] == ["old"] + ["new"] * (ROWS_PER_INSERT + 1)


def _open_store(uri: str, start: float) -> None:
    import time

    while time.time() < start:  # every process opens the new store at the same moment
        pass
    OperationalStore(uri)


def test_processes_opening_a_new_store_at_once_all_open_it(tmp_path) -> None:
    """Several processes creating a fresh store's tables at once: each finds a table missing and
    creates it, the losers' CREATE TABLE fails and is looked at again instead of ending the process."""
    import multiprocessing
    import time

    uri = f"sqlite:///{tmp_path / 'race.db'}"
    context = multiprocessing.get_context("spawn")
    start = time.time() + 2.0
    processes = [context.Process(target=_open_store, args=(uri, start)) for _ in range(6)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0] * 6
    assert OperationalStore(uri).count_predictions() == 0
