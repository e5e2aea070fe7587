"""The operational store on SQLite (embedded default) and on PostgreSQL (teams), same code."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from serein.store import OperationalStore

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


def test_state_and_monitor_results(store: OperationalStore) -> None:
    assert store.get_state("k", 0) == 0
    store.set_state("k", {"upto": 3})
    store.set_state("k", {"upto": 7})
    assert store.get_state("k") == {"upto": 7}
    rid = store.add_monitor_result("m", 1, {"drifted": ["x"]}, n_rows=10, drifted=["x"],
                                   window_start=1.0, window_end=2.0, report_path=None)
    history = store.monitor_history("m")
    assert history[0]["id"] == rid and history[0]["drifted"] == ["x"] and history[0]["result"] == {"drifted": ["x"]}
