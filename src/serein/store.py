"""The operational store: prediction log, feedback, monitor results, alerts and API keys.

SQLAlchemy 2 Core on SQLite (WAL) by default; the same code runs on PostgreSQL
(``store_uri: postgresql+psycopg://...``). Times are stored as UNIX seconds (float) so windows
compare the same way on every backend. Row payloads are JSON text.

>>> s = OperationalStore("sqlite://")
>>> s.log_predictions([{"request_id": "r1", "row": 0, "model": "m", "version": 1,
...                     "inputs": {"x": 1}, "prediction": 0, "latency_ms": 0.5}])
1
>>> s.count_predictions("m")
1
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import orjson
from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool

metadata = MetaData()

predictions = Table(
    "predictions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, index=True),
    Column("row", Integer, nullable=False, default=0),
    Column("ts", Float, nullable=False, index=True),
    Column("model", String(200), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("inputs", Text, nullable=False),
    Column("prediction", Text, nullable=False),
    Column("probabilities", Text),
    Column("score", Float),
    Column("latency_ms", Float),
    Column("shadow", Boolean, nullable=False, default=False),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False),
    Column("row", Integer, nullable=False, default=0),
    Column("model", String(200), nullable=False, index=True),
    Column("label", Text, nullable=False),
    Column("ts", Float, nullable=False),  # when the latest label arrived
)
FEEDBACK_ROW = Index("uq_feedback_request_row", feedback.c.request_id, feedback.c.row, unique=True)
"""One label a predicted row: a later label replaces the stored one (``add_feedback``)."""
LABEL_WAIT_SECONDS = 3600.0
"""How long a label waits for its prediction to reach the store before the readers of labels (the
detectors' error streams, retraining) pass it over (``labelled_after``): a server ships its
prediction log within seconds, or once its store is back after an outage."""

monitor_results = Table(
    "monitor_results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False, index=True),
    Column("version", Integer),
    Column("ts", Float, nullable=False, index=True),
    Column("window_start", Float),
    Column("window_end", Float),
    Column("n_rows", Integer, nullable=False),
    Column("drifted", Text, nullable=False),
    Column("result", Text, nullable=False),
    Column("report_path", Text),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False, index=True),
    Column("rule", String(200), nullable=False),
    Column("feature", String(200), nullable=False, default=""),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False, default="open"),
    Column("message", Text, nullable=False),
    Column("details", Text),
    Column("count", Integer, nullable=False, default=1),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("notified_at", Float),  # last time channels were told (repeats within the cooldown are not)
    Column("resolved_at", Float),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key_id", String(32), nullable=False, unique=True),
    Column("key_hash", String(128), nullable=False),
    Column("scopes", String(200), nullable=False),
    Column("name", String(200)),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
)


state = Table(
    "state",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)


def dumps(value: Any) -> str:
    """JSON text for a payload column (numpy scalars and arrays included)."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()


def loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _retried(step: Callable[[Engine], None], engine: Engine, attempts: int = 5) -> None:
    """Run a schema step that looks before it changes (create the tables missing, upgrade an older
    table). Two processes opening a store at once (the server's workers, a monitor run beside the
    agent) may both find the change to make and both make it: the loser's statement fails, and
    looking again finds it made."""
    for attempt in range(attempts):
        try:
            step(engine)
            return
        except DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def one_label_per_row(engine: Engine) -> None:
    """Give a feedback table an older serein created (a row per label received, so a correction
    stood beside the label it corrected) the unique ``FEEDBACK_ROW`` index. The labels of a row
    become one: the latest label and its time (what monitoring windows already read), under the
    first id (which the error streams' watermarks may have passed, so the row is not fed again)."""
    if any(index["name"] == FEEDBACK_ROW.name for index in inspect(engine).get_indexes(feedback.name)):
        return
    key = (feedback.c.request_id, feedback.c.row)
    ids = (select(func.min(feedback.c.id).label("first"), func.max(feedback.c.id).label("latest"))
           .group_by(*key).having(func.count() > 1).subquery())
    latest = (select(ids.c.first, feedback.c.label, feedback.c.ts)
              .join_from(ids, feedback, feedback.c.id == ids.c.latest))
    relabel = (update(feedback).where(feedback.c.id == bindparam("first"))
               .values(label=bindparam("latest_label"), ts=bindparam("latest_ts")))
    with engine.begin() as conn:
        rows = [{"first": first, "latest_label": label, "latest_ts": ts} for first, label, ts in conn.execute(latest)]
        if rows:
            conn.execute(relabel, rows)
            conn.execute(delete(feedback).where(feedback.c.id.not_in(select(func.min(feedback.c.id)).group_by(*key))))
        FEEDBACK_ROW.create(conn, checkfirst=True)


def add_missing_columns(engine: Engine) -> None:
    """Add the nullable columns a newer serein defines to tables an older one created, so an
    existing workspace keeps working after an upgrade (``create_all`` only creates tables)."""
    from sqlalchemy import text

    inspector = inspect(engine)
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            present = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in present and column.nullable:
                    kind = column.type.compile(dialect=engine.dialect)
                    conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))


SQLITE_PAGE_SIZE = 16384
"""Bytes in a page of a SQLite store created by this serein (SQLite's default is 4 KiB). The
prediction log writes about 550 bytes a row through three indexes; larger pages take fewer WAL
frames, write calls and B-tree splits per row: the shipper's CPU 8.8 -> 7.7 µs a row against a
4 KiB store (``benchmarks/shipper.py``). A store created before keeps its page size: changing it
means rewriting the whole file out of WAL mode."""


def make_engine(uri: str) -> Engine:
    """An engine for ``uri``; SQLite gets WAL, a busy timeout, ``synchronous=FULL`` and, in a
    new file, ``SQLITE_PAGE_SIZE``-byte pages."""
    if uri.startswith("sqlite"):
        in_memory = uri in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            uri,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if in_memory else None,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if not in_memory:
                cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")  # no effect on an existing file
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(uri, pool_pre_ping=True)


PREDICTION_COLUMNS = ("request_id", "row", "ts", "model", "version", "inputs", "prediction", "probabilities",
                      "score", "latency_ms", "shadow")  # the order of a table row (``log_prediction_rows``)
_ID, _ROW, _SHADOW = (PREDICTION_COLUMNS.index(c) for c in ("request_id", "row", "shadow"))


def prediction_table_rows(records: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Prediction records as ``predictions`` table rows in ``PREDICTION_COLUMNS`` order
    (payloads as JSON text)."""
    now = time.time()
    return [
        (
            r["request_id"],
            int(r.get("row", 0)),
            float(r.get("ts", now)),
            r["model"],
            int(r["version"]),
            dumps(r["inputs"]),
            dumps(r["prediction"]),
            None if r.get("probabilities") is None else dumps(r["probabilities"]),
            r.get("score"),
            r.get("latency_ms"),
            bool(r.get("shadow", False)),
        )
        for r in records
    ]


ROWS_PER_INSERT = 64
"""Table rows per SQLite INSERT statement (704 parameters, under the 999 that older SQLite builds
allow). One statement keeps its B-tree cursors open from row to row, so a row and its ``ts`` and
``model`` index entries are appended without a descent from the root each, and the statement is
stepped once per 64 rows: 4.4 -> 3.4 µs of CPU a row into an in-memory table with its indexes."""


@dataclass(frozen=True)
class _RowInsert:
    """The ``predictions`` INSERT compiled once for a store's dialect (``insert().compile`` costs
    about 0.1 ms, once per shipped batch before) and run straight through the DB-API: SQLAlchemy's
    own per-row parameter handling costs about 10 µs a row, which the prediction log's shipper
    cannot afford. SQLite gets ``ROWS_PER_INSERT`` rows a statement on the DB-API cursor (an
    ``exec_driver_sql`` call costs about 9 µs); other drivers one ``executemany`` (psycopg
    pipelines it)."""

    sql: str  # one row
    block_sql: str | None  # SQLite: ROWS_PER_INSERT rows, parameters in PREDICTION_COLUMNS order
    keys: tuple[str, ...] | None  # a driver with named parameters (psycopg): a dict per row
    order: tuple[int, ...] | None  # positional parameters in another order than PREDICTION_COLUMNS

    @classmethod
    def compile(cls, dialect: Dialect) -> _RowInsert:
        compiled = insert(predictions).compile(dialect=dialect, column_keys=list(PREDICTION_COLUMNS))
        sql = str(compiled)
        if not compiled.positional:
            return cls(sql, None, PREDICTION_COLUMNS, None)
        position = tuple(compiled.positiontup or ())
        if position != PREDICTION_COLUMNS:
            return cls(sql, None, None, tuple(PREDICTION_COLUMNS.index(key) for key in position))
        if dialect.name != "sqlite":
            return cls(sql, None, None, None)
        head, values = sql.split(" VALUES ")
        return cls(sql, f"{head} VALUES {', '.join([values] * ROWS_PER_INSERT)}", None, None)

    def run(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        """Insert ``rows`` (``PREDICTION_COLUMNS`` order) in ``conn``'s transaction."""
        if self.block_sql is None:
            params: list[Any] = rows
            if self.keys is not None:
                params = [dict(zip(self.keys, row, strict=True)) for row in rows]
            elif self.order is not None:
                params = [tuple(row[k] for k in self.order) for row in rows]
            conn.exec_driver_sql(self.sql, params)
            return
        dbapi_error = conn.dialect.loaded_dbapi.Error
        cursor = conn.connection.cursor()
        try:
            whole = len(rows) - len(rows) % ROWS_PER_INSERT
            for start in range(0, whole, ROWS_PER_INSERT):
                cursor.execute(self.block_sql, list(chain.from_iterable(rows[start:start + ROWS_PER_INSERT])))
            if whole < len(rows):
                cursor.executemany(self.sql, rows[whole:])
        except dbapi_error as exc:  # raised as SQLAlchemy raises it on every other path
            raise DBAPIError.instance(self.sql, None, exc, dbapi_error, dialect=conn.dialect) from exc
        finally:
            cursor.close()


def _not_logged(conn: Connection, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The table rows whose ``(request_id, row, shadow)`` is neither in the store nor earlier in
    ``rows``."""
    ids = sorted({r[_ID] for r in rows})
    seen: set[tuple[str, int, bool]] = set()
    for start in range(0, len(ids), 500):
        query = (select(predictions.c.request_id, predictions.c.row, predictions.c.shadow)
                 .where(predictions.c.request_id.in_(ids[start:start + 500])))
        seen.update((rid, int(row), bool(shadow)) for rid, row, shadow in conn.execute(query))
    fresh = []
    for r in rows:
        key = (r[_ID], int(r[_ROW]), bool(r[_SHADOW]))
        if key not in seen:
            seen.add(key)
            fresh.append(r)
    return fresh


def _replacing_insert(dialect: Dialect) -> Any:
    """The ``feedback`` INSERT that replaces the label of a row labelled before (``ON CONFLICT``,
    the same statement on SQLite and PostgreSQL). The dialect's module is imported here, when
    feedback arrives: importing both with the store cost every CLI run 20 ms."""
    from importlib import import_module

    name = "sqlite" if dialect.name == "sqlite" else "postgresql"
    stmt = import_module(f"sqlalchemy.dialects.{name}").insert(feedback)
    return stmt.on_conflict_do_update(index_elements=list(FEEDBACK_ROW.columns),
                                      set_={"label": stmt.excluded.label, "ts": stmt.excluded.ts})


def _labelled_row(model: str) -> Any:
    """The join of a label to the row it labels: ``model``'s own logged row (not a shadow one)
    with the label's request id and row."""
    return ((predictions.c.request_id == feedback.c.request_id) & (predictions.c.row == feedback.c.row)
            & (predictions.c.model == model) & predictions.c.shadow.is_(False))


def _decoded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` of the predictions table (and labels) with their JSON payloads read, in place."""
    for row in rows:
        for key in ("inputs", "prediction", "probabilities", "label"):
            if key in row:
                row[key] = loads(row[key])
    return rows


class OperationalStore:
    """Tables of the running system, created on first use."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.engine = make_engine(uri)
        _retried(metadata.create_all, self.engine)
        add_missing_columns(self.engine)
        _retried(one_label_per_row, self.engine)
        self._row_insert = _RowInsert.compile(self.engine.dialect)

    # -- prediction log ----------------------------------------------------------------------
    def log_predictions(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Append prediction records in one transaction; returns how many were written.

        Each record holds ``request_id, row, model, version, inputs, prediction`` and optionally
        ``probabilities, score, latency_ms, shadow, ts``. The write is committed (durable) when
        this returns.
        """
        return self.log_prediction_rows(prediction_table_rows(records))

    def log_predictions_once(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Append the records whose ``(request_id, row, shadow)`` is not logged yet, in one
        transaction; returns how many were new. Re-shipping a prediction-log segment after a crash
        this way never duplicates a row."""
        return self.log_prediction_rows(prediction_table_rows(records), once=True)

    def log_prediction_rows(self, rows: list[tuple[Any, ...]], once: bool = False) -> int:
        """Append table rows (tuples in ``PREDICTION_COLUMNS`` order, payloads already JSON text,
        as ``prediction_table_rows`` makes them) in one transaction; returns how many were
        written. ``once``: only the rows whose ``(request_id, row, shadow)`` is not logged yet.
        The prediction log's shipper makes these rows straight from its request records."""
        if not rows:
            return 0
        with self.engine.begin() as conn:
            if once:
                rows = _not_logged(conn, rows)
            if rows:
                self._row_insert.run(conn, rows)
        return len(rows)

    def count_predictions(self, model: str | None = None) -> int:
        query = select(func.count()).select_from(predictions)
        if model is not None:
            query = query.where(predictions.c.model == model)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def prediction_rows(
        self,
        model: str,
        since: float | None = None,
        until: float | None = None,
        last: int | None = None,
        include_shadow: bool = False,
        after_id: int | None = None,
        labelled_only: bool = False,
        version: int | None = None,
        up_to_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Logged predictions of ``model`` in a time window or the ``last`` N, oldest first,
        each joined with its feedback label, the latest one sent (``label`` is None where none
        arrived).

        ``after_id`` keeps rows logged after that log id (a watermark), ``up_to_id`` those up to
        that one (``settled_upto``); ``labelled_only`` keeps rows that have feedback; ``version``
        keeps one model version's rows (filtered in the query, so ``last`` counts that version's
        rows only)."""
        query = (
            select(predictions, feedback.c.label)
            .select_from(predictions.outerjoin(
                feedback, (feedback.c.request_id == predictions.c.request_id) & (feedback.c.row == predictions.c.row)
                & (feedback.c.model == predictions.c.model)
            ))
            .where(predictions.c.model == model)
        )
        if not include_shadow:
            query = query.where(predictions.c.shadow.is_(False))
        if after_id is not None:
            query = query.where(predictions.c.id > after_id)
        if up_to_id is not None:
            query = query.where(predictions.c.id <= up_to_id)
        if labelled_only:
            query = query.where(feedback.c.id.is_not(None))
        if version is not None:
            query = query.where(predictions.c.version == int(version))
        if since is not None:
            query = query.where(predictions.c.ts >= since)
        if until is not None:
            query = query.where(predictions.c.ts < until)
        if last is not None:
            query = query.order_by(predictions.c.id.desc()).limit(last)
        else:
            query = query.order_by(predictions.c.id)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        if last is not None:
            rows.reverse()
        return _decoded(rows)

    # -- feedback ----------------------------------------------------------------------------
    def request_rows(self, request_ids: Iterable[str]) -> dict[str, tuple[str, int]]:
        """For each known request id: its model and number of rows."""
        ids = list(set(request_ids))
        out: dict[str, tuple[str, int]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                query = (
                    select(predictions.c.request_id, predictions.c.model, func.count())
                    .where(predictions.c.request_id.in_(chunk), predictions.c.shadow.is_(False))
                    .group_by(predictions.c.request_id, predictions.c.model)
                )
                for rid, model, n in conn.execute(query):
                    out[rid] = (model, int(n))
        return out

    def add_feedback(self, items: Sequence[Mapping[str, Any]]) -> int:
        """Store ground-truth labels: items of ``request_id, row, model, label``; returns how many
        were stored. A row holds one label: a later one (a correction, in a later call or later
        in ``items``) replaces the label and its time, and keeps the row's feedback id, so the
        error streams (``labelled_after``) never take a row twice."""
        if not items:
            return 0
        now = time.time()
        rows = [
            {
                "request_id": i["request_id"],
                "row": int(i.get("row", 0)),
                "model": i["model"],
                "label": dumps(i["label"]),
                "ts": float(i.get("ts", now)),
            }
            for i in items
        ]
        with self.engine.begin() as conn:
            conn.execute(_replacing_insert(conn.dialect), rows)
        return len(rows)

    def labelled_after(self, model: str, after_feedback_id: int = 0, wait: float = LABEL_WAIT_SECONDS,
                       now: float | None = None, whole: bool = False,
                       up_to_feedback_id: int | None = None) -> list[dict[str, Any]]:
        """Feedback of ``model`` stored after a feedback id (a watermark), in arrival order, each
        with its prediction: ``feedback_id, label, id, version, prediction, score`` (``whole``:
        the whole logged row besides, as ``prediction_rows`` gives it). Streams of errors and
        retraining read this, so a label arriving late still counts once. A row keeps the
        feedback id of its first label: a correction read before is in the windows
        (``prediction_rows``) but not in these streams, which never take back a value they were fed.

        A server accepts a label while its prediction is still in the prediction log, on its
        way to the store (seconds, or longer under a backlog): the stream ends before the first
        such label, which is read in its turn once its prediction is here. Without that, a reader
        that moves its watermark to the last label it got would pass over it for good. A label
        whose prediction has not come ``wait`` seconds after it arrived is passed over instead
        (its prediction never reached this store), so that one cannot hold the stream back.
        ``up_to_feedback_id`` ends it there too: where the feedback ids are settled
        (``settled_upto``)."""
        matched = _labelled_row(model)
        waiting = (
            select(func.min(feedback.c.id))
            .select_from(feedback.outerjoin(predictions, matched))
            .where(feedback.c.model == model, feedback.c.id > after_feedback_id, predictions.c.id.is_(None),
                   feedback.c.ts >= (time.time() if now is None else now) - wait)
        )
        columns = [predictions] if whole else [predictions.c.id, predictions.c.version, predictions.c.prediction,
                                               predictions.c.score]
        query = (
            select(feedback.c.id.label("feedback_id"), feedback.c.label, *columns)
            .select_from(feedback.join(predictions, matched))
            .where(feedback.c.model == model, feedback.c.id > after_feedback_id)
            .order_by(feedback.c.id)
        )
        if up_to_feedback_id is not None:
            query = query.where(feedback.c.id <= up_to_feedback_id)
        with self.engine.connect() as conn:
            first_waiting = conn.execute(waiting).scalar()
            if first_waiting is not None:
                query = query.where(feedback.c.id < first_waiting)
            rows = [dict(r._mapping) for r in conn.execute(query)]
        return _decoded(rows)

    def settled_upto(self, table: str, after_id: int, gap: Mapping[str, Any] | None = None
                     ) -> tuple[int, dict[str, Any] | None]:
        """How far the ids of ``table`` (``predictions`` or ``feedback``) above ``after_id`` are
        settled — each one committed or never to be — as ``(upto, gap)``: a reader that moves a
        watermark over ids reads up to ``upto`` only, and keeps ``gap`` for its next call.

        On PostgreSQL, writers in concurrent transactions (several servers' shippers, feedback
        requests) commit their ids out of order: id 8 may be visible while id 7 is not yet, and
        a reader that moved its watermark to 8 would pass over 7 for good. A missing id is either
        held by a transaction still in progress, or lost for good (a rolled-back insert; rows an
        upgrade merged). Only a transaction in progress when the gap was first seen can hold it
        (an id is allocated before the later ids around it, and transactions starting later get
        later ids), so ``gap`` records the first missing id and those transactions: once none of
        them is in progress any more, the gap is settled either way. One snapshot serves both
        questions (which ids are visible, which transactions are in progress). SQLite has one
        writer at a time, so its ids commit in order and every gap is settled at once. (PostgreSQL
        sequences with a ``CACHE`` above 1 hand ids out of order between sessions, which this
        cannot see: serein's tables use the default of 1.)"""
        column = {"predictions": predictions.c.id, "feedback": feedback.c.id}[table]
        ids = select(column).where(column > after_id).order_by(column)
        postgres = self.engine.dialect.name == "postgresql"
        connection = self.engine.connect()
        if postgres:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection as conn:
            running = ({int(x) for x in conn.exec_driver_sql(
                "SELECT CAST(x AS TEXT) FROM pg_snapshot_xip(pg_current_snapshot()) AS x").scalars()}
                if postgres else set())
            expected = after_id + 1
            for (found,) in conn.execute(ids):
                if found > expected:  # ids expected .. found - 1 are missing
                    holders = running if not gap or gap.get("first") != expected else running & set(gap["holders"])
                    if holders:
                        return expected - 1, {"first": expected, "holders": sorted(holders)}
                expected = found + 1
        return expected - 1, None

    def last_feedback_id(self, model: str, up_to_log_id: int) -> int:
        """The highest feedback id of ``model``'s labels on rows logged up to a log id (0 when
        none): where a watermark on log ids (an earlier serein's retraining) stands in feedback ids."""
        query = (select(func.max(feedback.c.id))
                 .select_from(feedback.join(predictions, _labelled_row(model)))
                 .where(feedback.c.model == model, predictions.c.id <= up_to_log_id))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def count_feedback(self, model: str | None = None) -> int:
        query = select(func.count()).select_from(feedback)
        if model is not None:
            query = query.where(feedback.c.model == model)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    # -- small persisted state (watermarks, detector state) ----------------------------------
    def get_state(self, key: str, default: Any = None) -> Any:
        with self.engine.connect() as conn:
            text = conn.execute(select(state.c.value).where(state.c.key == key)).scalar_one_or_none()
        return default if text is None else loads(text)

    def set_state(self, key: str, value: Any) -> None:
        """Insert or replace ``key`` (portable: update, then insert when nothing was updated)."""
        row = {"value": dumps(value), "updated_at": time.time()}
        with self.engine.begin() as conn:
            if conn.execute(update(state).where(state.c.key == key).values(**row)).rowcount == 0:
                conn.execute(insert(state).values(key=key, **row))

    # -- API keys (hashed secrets; see serein.keys) -----------------------------------------
    def add_api_key(self, key_id: str, key_hash: str, scopes: Sequence[str], name: str | None) -> dict[str, Any]:
        """Store a new key's id, secret hash and scopes; returns the stored row."""
        row = {"key_id": key_id, "key_hash": key_hash, "scopes": " ".join(scopes), "name": name,
               "created_at": time.time(), "revoked_at": None}
        with self.engine.begin() as conn:
            conn.execute(insert(api_keys).values(**row))
        return row

    def api_keys(self, active_only: bool = False) -> list[dict[str, Any]]:
        """Every stored key (with its hash), oldest first; ``active_only`` leaves revoked ones out."""
        query = select(api_keys).order_by(api_keys.c.id)
        if active_only:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def revoke_api_key(self, key_id: str) -> float | None:
        """Mark an active key revoked; returns when, or None when no active key has that id."""
        now = time.time()
        query = (update(api_keys)
                 .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                 .values(revoked_at=now))
        with self.engine.begin() as conn:
            return now if conn.execute(query).rowcount == 1 else None

    # -- monitor results ---------------------------------------------------------------------
    def add_monitor_result(self, model: str, version: int | None, result: Mapping[str, Any],
                           n_rows: int, drifted: Sequence[str], window_start: float | None,
                           window_end: float | None, report_path: str | None) -> int:
        with self.engine.begin() as conn:
            res = conn.execute(
                insert(monitor_results).values(
                    model=model, version=version, ts=time.time(), window_start=window_start,
                    window_end=window_end, n_rows=n_rows, drifted=dumps(list(drifted)),
                    result=dumps(result), report_path=report_path,
                )
            )
            return int(res.inserted_primary_key[0])

    def monitor_history(self, model: str, limit: int = 100) -> list[dict[str, Any]]:
        query = (
            select(monitor_results)
            .where(monitor_results.c.model == model)
            .order_by(monitor_results.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            row["drifted"] = loads(row["drifted"])
            row["result"] = loads(row["result"])
        return rows
