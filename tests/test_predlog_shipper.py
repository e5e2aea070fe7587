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


def _one_by_one(record: dict) -> list[tuple]:
    """The table rows of ``record``'s rows logged one dict each (``serein.store.dumps`` payloads)."""
    probabilities = record["probabilities"] or [None] * len(record["predictions"])
    return prediction_table_rows([
        {"request_id": record["request_id"], "row": i, "ts": record["ts"], "model": record["model"],
         "version": record["version"], "inputs": inputs, "prediction": label, "probabilities": proba,
         "score": score, "latency_ms": record["latency_ms"], "shadow": record["shadow"]}
        for i, (inputs, label, proba, score) in enumerate(
            zip(record["inputs"], record["predictions"], probabilities, record["scores"], strict=True))])


def test_table_rows_match_the_generic_path_for_any_json_payload() -> None:
    for labels, probabilities in ((["yes", "no ü"], [[0.1, 0.9], [1 / 3, 2 / 3]]), ([True, None], None),
                                  ([1.25, 7], None), ([{"k": 1}, [1, 2]], [[1.0], [0.0]])):
        record = orjson.loads(orjson.dumps(request_record(
            request_id="r", model="m", version=3, inputs=INPUTS, predictions=labels, probabilities=probabilities,
            scores=[0.5, None], latency_ms=None, shadow=True, ts=12.5)))
        assert table_rows(record) == _one_by_one(record)


def test_span_rows_read_what_the_server_wrote(tmp_path: Path) -> None:
    """Lines written as the server writes them (``record_line``, numpy values serialised by
    orjson) and as an earlier serein wrote them (the whole record as one JSON object) come back
    as the rows of the records they were made from."""
    records = [request_record(request_id=f"r{k}", model="m", version=1, inputs=INPUTS,
                              predictions=np.array([k, k + 1]), probabilities=np.array([[0.25, 0.75], [0.5, 0.5]]),
                              scores=np.array([0.75, 0.5]), latency_ms=0.3, ts=float(k)) for k in range(4)]
    lines = [record_line(r) for r in records[:3]] + [orjson.dumps(records[3], option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"]
    assert b"\t" in lines[0] and b"\t" not in lines[3]
    segment = tmp_path / "segment.jsonl"
    segment.write_bytes(b"".join(lines))
    start = len(lines[0])
    rows = span_rows(segment, start, sum(map(len, lines)))
    expected = [_one_by_one(orjson.loads(orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY))) for r in records[1:]]
    assert rows == [row for rows_of_one in expected for row in rows_of_one]
    assert [(r[0], r[1]) for r in rows] == [("r1", 0), ("r1", 1), ("r2", 0), ("r2", 1), ("r3", 0), ("r3", 1)]
    assert orjson.loads(rows[0][5]) == INPUTS[0], "a tab inside a value stays inside it"


def test_a_line_whose_rows_disagree_with_its_predictions_is_refused() -> None:
    record = request_record(request_id="r", model="m", version=1, inputs=INPUTS, predictions=[0, 1],
                            probabilities=None, scores=[0.5, 0.5], latency_ms=0.3, ts=1.0)
    line = record_line(record)[:-1]
    head, first, _ = line.split(b"\t")
    with pytest.raises(ValueError):
        line_rows(head + b"\t" + first)
