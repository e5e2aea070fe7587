"""The shipper's table rows: the same JSON text and values as the store's generic path gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from serein.serve.predlog import request_record
from serein.serve.predlog_shipper import line_rows, record_line, span_rows, table_rows
from serein.store import prediction_table_rows

INPUTS = [{"age": 46.0, "name": "Zoë \u2603 \"q\" \\ \n\t", "n": 2**53 + 1, "tags": ["a", None], "flag": True,
           "nested": {"k": [1.5, -0.0, 1e-7]}, "missing": None},
          {"age": 0.1 + 0.2, "name": "", "n": -3, "tags": [], "flag": False, "nested": {}, "missing": None}]


COLUMNS = {name: [row[name] for row in INPUTS] for name in INPUTS[0]}


def _one_by_one(record: dict) -> list[tuple]:
    """The table rows of ``record``'s rows logged one dict each (``serein.store.dumps`` payloads)."""
    probabilities = record["probabilities"] or [None] * len(record["predictions"])
    inputs = record["inputs"]
    rows = [dict(zip(inputs, values)) for values in zip(*inputs.values())] if isinstance(inputs, dict) else inputs
    return prediction_table_rows([
        {"request_id": record["request_id"], "row": i, "ts": record["ts"], "model": record["model"],
         "version": record["version"], "inputs": row, "prediction": label, "probabilities": proba,
         "score": score, "latency_ms": record["latency_ms"], "shadow": record["shadow"]}
        for i, (row, label, proba, score) in enumerate(
            zip(rows, record["predictions"], probabilities, record["scores"], strict=True))])


def _tab_line(record: dict) -> bytes:
    """``record`` (inputs as a list of rows) as the previous serein wrote it: the record without its
    inputs, then each row's inputs as JSON text, tab-separated."""
    head = orjson.dumps({k: v for k, v in record.items() if k != "inputs"}, option=orjson.OPT_SERIALIZE_NUMPY)
    return b"\t".join([head, *map(orjson.dumps, record["inputs"])]) + b"\n"


def test_table_rows_match_the_generic_path_for_any_json_payload() -> None:
    for labels, probabilities in ((["yes", "no ü"], [[0.1, 0.9], [1 / 3, 2 / 3]]), ([True, None], None),
                                  ([1.25, 7], None), ([{"k": 1}, [1, 2]], [[1.0], [0.0]])):
        for inputs in (COLUMNS, INPUTS):  # as logged now, and a list of rows as an earlier serein logged them
            record = orjson.loads(orjson.dumps(request_record(
                request_id="r", model="m", version=3, inputs=inputs, predictions=labels, probabilities=probabilities,
                scores=[0.5, None], latency_ms=None, shadow=True, ts=12.5)))
            assert table_rows(record) == _one_by_one(record)
            assert [orjson.loads(row[5]) for row in table_rows(record)] == INPUTS


def test_span_rows_read_what_the_server_wrote(tmp_path: Path) -> None:
    """Lines written as the server writes them (``record_line``: the inputs as columns, numpy
    values serialised by orjson) and as earlier servers wrote them (each row's inputs after a tab;
    the whole record, its inputs a list of rows) come back as the rows of the records they were
    made from."""
    records = [request_record(request_id=f"r{k}", model="m", version=1,
                              inputs={**COLUMNS, "age": np.array(COLUMNS["age"])} if k < 2 else INPUTS,
                              predictions=np.array([k, k + 1]), probabilities=np.array([[0.25, 0.75], [0.5, 0.5]]),
                              scores=np.array([0.75, 0.5]), latency_ms=0.3, ts=float(k)) for k in range(4)]
    lines = [record_line(r) for r in records[:2]] + [_tab_line(records[2])] + [record_line(records[3])]
    assert b"\t" not in lines[1] and b"\t" in lines[2]
    segment = tmp_path / "segment.jsonl"
    segment.write_bytes(b"".join(lines))
    start = len(lines[0])
    rows = span_rows(segment, start, sum(map(len, lines)))
    expected = [_one_by_one(orjson.loads(orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY))) for r in records[1:]]
    assert rows == [row for rows_of_one in expected for row in rows_of_one]
    assert [(r[0], r[1]) for r in rows] == [("r1", 0), ("r1", 1), ("r2", 0), ("r2", 1), ("r3", 0), ("r3", 1)]
    assert [orjson.loads(r[5]) for r in rows] == INPUTS * 3, "a tab or a newline inside a value stays inside it"


def test_a_line_whose_rows_disagree_with_its_predictions_is_refused() -> None:
    record = request_record(request_id="r", model="m", version=1, inputs=COLUMNS, predictions=[0, 1],
                            probabilities=None, scores=[0.5, 0.5], latency_ms=0.3, ts=1.0)
    for inputs in ({**COLUMNS, "age": [46.0]}, {name: values[:1] for name, values in COLUMNS.items()}):
        with pytest.raises(ValueError):
            line_rows(record_line({**record, "inputs": inputs})[:-1])
    head, first, _ = _tab_line({**record, "inputs": INPUTS})[:-1].split(b"\t")
    with pytest.raises(ValueError):
        line_rows(head + b"\t" + first)
