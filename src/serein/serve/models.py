"""The set of models being served, and the hot swap that follows the ``champion`` alias.

``ServedModel`` bundles what a request needs (the loaded version, its compiled validator and its
runtime) so a request takes one reference at its start and finishes on that version even if the
champion moves meanwhile. ``ModelSet.refresh`` asks the registry for every model's champion and,
for each one that moved (or is new), loads the version fully, warms it with one prediction and
only then swaps the reference; a version that fails to load or warm (e.g. a sha256 mismatch) is
logged and skipped while the old version keeps serving (it is retried after a minute, in case the
cause was transient). A model whose champion alias is removed keeps serving its last version until
the server restarts: taking a model out of service is a deliberate act, not a side effect.
``serein models rollback`` moves the alias back, so it takes effect the same way.

With a challenger policy (``serve.challenger.mode`` ``canary`` or ``shadow``) the ``challenger``
alias is followed the same way (loaded, warmed, swapped); removing that alias stops the policy at
once, since a challenger only ever receives traffic by choice.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import numpy as np

from serein.batch import ChunkScorer, estimator_model, plan_path
from serein.errors import NotFoundError, SereinError, ValidationFailed
from serein.serve.batching import INLINE_ROWS, MicroBatcher
from serein.serve.payloads import THREADED_DECODE_BYTES, JsonInstances
from serein.serve.runtime import (
    EstimatorRuntime,
    NonFiniteOutput,
    Predictions,
    Runtime,
    SklearnRuntime,
    TablesRuntime,
    make_runtime,
)
from serein.serve.tabular import column_rows
from serein.serve.validation import MAX_PROBLEMS, RequestInvalid, RowValidator, ValidatedBatch

if TYPE_CHECKING:
    from serein.registry.loaded import LoadedModel
    from serein.workspace import Workspace

log = logging.getLogger(__name__)

# A version that failed to load is tried again only after this many seconds (or when the
# champion moves), so a broken artifact is not reloaded and logged every reload interval.
RETRY_FAILED_AFTER = 60.0
READ_MIN_BYTES = 4096  # smaller JSON bodies (about a dozen rows of 20 fields) take orjson: the reader costs more


class ModelsLoading(SereinError):
    """The first look at the registry has not finished: answered with 503, retry shortly."""

    http_status = 503


@dataclass(frozen=True)
class BatchSettings:
    """How concurrent requests are combined (``serve.batch_max_rows``, ``serve.batch_max_wait_ms``)."""

    max_rows: int = 256
    max_wait: float = 0.002


@dataclass(frozen=True)
class ServedModel:
    """One loaded, warmed model version with its validator, runtime and micro-batcher."""

    model: LoadedModel
    validator: RowValidator
    runtime: Runtime
    loaded_at: float
    batcher: MicroBatcher

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def version(self) -> int:
        return int(self.model.version)

    @property
    def classes(self) -> list[Any] | None:
        return self.runtime.classes if self.model.is_classifier else None

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "task": self.model.task,
                "runtime": self.runtime.name, "loaded_at": self.loaded_at}

    def describe(self) -> dict[str, Any]:
        """What a client needs to call the model: version, runtime (and ``scorer``: what computes
        the outputs), classes and input schema."""
        return {
            **self.summary(),
            "scorer": self.runtime.scorer,
            "run_id": self.model.run_id,
            "target": self.model.target,
            "classes": self.classes,
            "features": self.validator.features,
            "input_schema": self.model.contract.to_dict(),
        }

    def score(self, rows: list[Any]) -> tuple[ValidatedBatch, Predictions]:
        """Validate decoded rows against the contract and predict them in one call (blocking).

        Raises ``RequestInvalid`` for rows that break the contract, and ``ValidationFailed`` when
        the pipeline refuses rows that passed it (logged: the contract is looser than the model).
        The pipeline's own message is not passed on, as it may quote the submitted values."""
        batch = self.validator.validate(rows)
        try:
            return batch, self.runtime.predict(batch.columns, batch.n_rows)
        except (ValueError, TypeError) as exc:
            raise self._refused(batch, exc) from None

    async def predict(self, rows: list[Any] | JsonInstances) -> tuple[ValidatedBatch, Predictions]:
        """``score`` for the event loop: the rows are validated (in a worker thread when more
        than ``INLINE_ROWS``: ~1.3 µs per row, so the loop is never held long), then predicted
        through the micro-batcher, together with concurrent requests. A JSON body not decoded
        yet is read by the compiled reader where it can (``RowValidator.validate_body``), else
        decoded and validated as rows."""
        batch = await self._read(rows) if isinstance(rows, JsonInstances) else None
        if batch is None:
            if isinstance(rows, JsonInstances):
                rows = await rows.rows()
            if len(rows) <= INLINE_ROWS:
                batch = self.validator.validate(rows)
            else:
                batch = await anyio.to_thread.run_sync(self.validator.validate, rows)
        try:
            return batch, await self.batcher.predict(batch.columns, batch.n_rows)
        except (ValueError, TypeError) as exc:
            raise self._refused(batch, exc) from None

    async def _read(self, body: JsonInstances) -> ValidatedBatch | None:
        """``RowValidator.validate_body`` of a body of at least ``READ_MIN_BYTES`` (in a worker
        thread past ``THREADED_DECODE_BYTES``, as orjson is), else None once a smaller body is
        known to give no field twice."""
        size = len(body.body)
        if size < READ_MIN_BYTES:
            self.validator.refuse_fields_given_twice(body.body, body.max_rows, body.key)
            return None
        if size > THREADED_DECODE_BYTES:
            return await anyio.to_thread.run_sync(self.validator.validate_body, body.body, body.max_rows, body.key)
        return self.validator.validate_body(body.body, body.max_rows, body.key)

    def _refused(self, batch: ValidatedBatch, exc: Exception) -> ValidationFailed:
        if isinstance(exc, NonFiniteOutput):
            return _non_finite(batch, exc.rows)
        log.warning("%s v%d could not score %d row(s) that passed the contract", self.name, self.version,
                    batch.n_rows, exc_info=exc)
        suspects = ""
        if batch.flags:  # accepted yet out of the contract's range or categories: the likely cause
            first = batch.flags[0]
            suspects = (f"; {len(batch.flags)} value(s) flagged in details, first at row {first['row']}, "
                        f"field {first['field']!r}: {first['problem']}")
        refused = ValidationFailed(
            f"model {self.name!r} v{self.version} could not score the instances although they passed the "
            f"contract ({type(exc).__name__}){suspects}",
            hint="the server log has the details; the contract may be looser than the model")
        refused.problems = batch.flags[:MAX_PROBLEMS]  # type: ignore[attr-defined]  # the body's details
        return refused

    def check_label(self, label: Any) -> Any:
        """A feedback label as stored, or ``ValidationFailed`` naming what was expected."""
        if self.classes is not None:
            for cls in self.classes:
                if _same_kind(label, cls) and label == cls:
                    return cls
            shown = ", ".join(map(repr, self.classes[:10])) + (", ..." if len(self.classes) > 10 else "")
            raise ValidationFailed(f"label must be one of the model's classes [{shown}]")
        if type(label) in (int, float) and math.isfinite(label):
            return float(label)
        raise ValidationFailed("label must be a finite number for a regression model")


def _non_finite(batch: ValidatedBatch, rows: list[int]) -> RequestInvalid:
    """The refusal of rows the model computes no finite output for, naming the fields flagged
    out of the contract's range on each (the values that overflowed), else the row."""
    flagged: dict[int, list[dict[str, Any]]] = {}
    for flag in batch.flags:
        flagged.setdefault(flag["row"], []).append(flag)
    problems = []
    for i in rows:
        problems.extend({"row": i, "field": flag["field"],
                         "problem": f"{flag['problem']}: the model computes no finite prediction with it"}
                        for flag in flagged.get(i, ()))
        if i not in flagged:
            problems.append({"row": i, "field": None, "problem": "the model computes no finite prediction for this row"})
    return RequestInvalid(problems[:MAX_PROBLEMS], more=len(problems) > MAX_PROBLEMS)


def _same_kind(a: Any, b: Any) -> bool:
    """Whether two JSON values may compare equal as labels: ``1`` matches ``1.0`` but not
    ``True`` or ``"1"``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b)
    return isinstance(a, (int, float)) == isinstance(b, (int, float))


def prepare(model: LoadedModel, threads: int, prefer_onnx: bool = True,
            batching: BatchSettings = BatchSettings(), plan_file: Path | None = None) -> ServedModel:
    """Compile the validator, open the runtime and warm it with one prediction. ``plan_file``:
    where batch scoring remembers the version's plan (``serein.batch.plan_path``); when that plan
    allows it, the runtime preprocesses with numpy (``estimator_runtime``)."""
    validator = RowValidator(model.contract)
    runtime = make_runtime(model, threads=threads, prefer_onnx=prefer_onnx)
    if plan_file is not None and runtime.name == "onnx":
        try:
            runtime = estimator_runtime(model, validator, plan_file, threads) or runtime
        except Exception:  # noqa: BLE001 - a faster path that fails to set up: the whole export still serves
            log.warning("%s v%s: numpy preprocessing could not be set up; the whole ONNX export serves",
                        model.name, model.version, exc_info=True)
    if runtime.name == "onnx":  # rows beyond what float32 computes are scored by the pipeline
        runtime.fallback = SklearnRuntime(model.pipeline, model.contract, model.classes)  # type: ignore[attr-defined]
    runtime.predict(validator.example_columns(), 1)
    batcher = MicroBatcher(runtime, max_rows=batching.max_rows, max_wait=batching.max_wait)
    return ServedModel(model, validator, runtime, time.time(), batcher)


def estimator_runtime(model: LoadedModel, validator: RowValidator, plan_file: Path,
                      threads: int) -> TablesRuntime | EstimatorRuntime | None:
    """A runtime preprocessing ``model``'s requests with numpy as its batch plan does: the trees
    as look-up tables scored by the compiled kernel (:class:`TablesRuntime`) when the plan's
    estimator is the tables and the kernel is built, else the export's estimator part in ONNX
    Runtime (:class:`EstimatorRuntime`: about half the whole export's time per call). None when
    the plan has no checked preprocessing (the plan is worked out now if ``plan_file`` has none:
    that loads the pipeline once) or when the request path's inputs
    (:meth:`ArrowFeatures.inputs_of`, :meth:`ArrowFeatures.matrix_of`) differ by a bit from the
    plan's on the version's reference sample, validated as a request would be."""
    import pyarrow as pa

    scorer = ChunkScorer(model, prefer_onnx=True, arrow_path=True, plan_file=plan_file)
    features = scorer.features
    sample = (model.profile or {}).get("sample", {}).get("columns", {})
    if features is None or not model.onnx_path or any(f not in sample for f in model.features):
        return None
    columns = {f: sample[f] for f in model.features}
    try:
        rows = column_rows(list(columns), list(columns.values()), len(columns[model.features[0]]))
        batch = validator.validate(rows)
    except SereinError as exc:
        log.info("%s v%s: the reference sample does not pass the contract as requests (%s); the whole ONNX "
                 "export serves", model.name, model.version, exc.message)
        return None
    record = pa.RecordBatch.from_pydict(columns)
    if scorer.trees is not None and scorer.trees.kernel is not None and all(
            np.array_equal(ours, checked) for ours, checked in
            zip(features.inputs_of(batch.columns, batch.n_rows), features.inputs(record), strict=True)):
        return TablesRuntime(features, scorer.trees, model.classes)
    if not np.array_equal(features.matrix_of(batch.columns, batch.n_rows), features.matrix(record)):
        log.warning("%s v%s: request rows preprocess differently from the checked batch plan; "
                    "the whole ONNX export serves", model.name, model.version)
        return None
    cut = estimator_model(model.onnx_path, features.width, features.nan_free)
    return EstimatorRuntime(features, cut, model.classes, threads=threads)


def settle_heap() -> None:
    """Collect the heap once and freeze what survives (``gc.freeze``). The modules, the app and
    the loaded models are never garbage, yet every full collection walked them all: about a tenth
    of a 1-row request's CPU under load. Called after versions are swapped in: the previous
    freeze is undone first, so a swapped-out version's cyclic garbage is collected rather than
    kept. One pause of the event loop per swap: a full collection, 0.23-0.32 s measured with
    one model loaded (~385k objects), against full collections that held it 0.1-0.3 s at
    random before (p99 of strict answers 146 -> 2 ms at concurrency 1).

    >>> import gc
    >>> settle_heap(); gc.get_freeze_count() > 0
    True
    >>> gc.unfreeze()
    """
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    log.info("heap settled: %d objects frozen in %.0f ms", gc.get_freeze_count(), 1000 * (time.perf_counter() - started))


class ModelSet:
    """Every registered model's champion (and, with a challenger policy, its challenger), kept
    current by ``watch``."""

    def __init__(self, ws: Workspace, threads: int = 1, prefer_onnx: bool = True,
                 batching: BatchSettings = BatchSettings(), challenger_mode: str = "off",
                 canary_share: float = 0.0,
                 on_load: Callable[[ServedModel, float], None] | None = None) -> None:
        self.ws = ws
        self.on_load = on_load  # told each version swapped in and its load + warm-up seconds (metrics)
        self.threads = threads
        self.prefer_onnx = prefer_onnx
        self.batching = batching
        self.challenger_mode = challenger_mode
        self.canary_share = canary_share if challenger_mode == "canary" else 0.0
        self.follow_challengers = challenger_mode != "off"
        self._served: dict[str, ServedModel] = {}
        self._challengers: dict[str, ServedModel] = {}
        self._failed: dict[tuple[str, str], tuple[int, float]] = {}  # (name, alias) -> (version, when it failed)
        self.refreshed = False

    @property
    def ready(self) -> bool:
        return bool(self._served)

    def names(self) -> list[str]:
        return sorted(self._served)

    def all(self) -> list[ServedModel]:
        return [self._served[name] for name in self.names()]

    def get(self, name: str) -> ServedModel:
        served = self._served.get(name)
        if served is None and not self.refreshed:
            raise ModelsLoading("models are still loading", hint="retry in a few seconds; GET /readyz turns 200 when ready")
        if served is None:
            names = ", ".join(self.names()) or "none yet"
            raise NotFoundError(f"model {name[:200]!r} is not served (served models: {names})",
                                hint="GET /v1/models lists them; register and promote a champion to add one")
        return served

    def challenger(self, name: str) -> ServedModel | None:
        """The loaded challenger of ``name`` when a challenger policy is on and one is set."""
        return self._challengers.get(name)

    def pick(self, name: str) -> tuple[ServedModel, bool]:
        """The version that answers this request and whether it is the challenger: under the
        canary policy a ``canary_share`` of requests (drawn at random) go to the challenger."""
        served = self.get(name)
        if self.canary_share and random.random() < self.canary_share:
            challenger = self._challengers.get(name)
            if challenger is not None:
                return challenger, True
        return served, False

    def refresh(self) -> list[ServedModel]:
        """Load every champion (and challenger) that moved or appeared; returns the newly
        swapped-in versions."""
        swapped = []
        for entry in self.ws.registry.list_models():  # one registry query: aliases come with the listing
            name = entry["name"]
            champion = self._follow(name, "champion", entry["champion"], self._served)
            if champion is not None:
                self._served = {**self._served, name: champion}  # one reference swap: atomic for readers
                swapped.append(champion)
            if not self.follow_challengers:
                continue
            version = entry["challenger"]
            if version is None or version == entry["champion"]:
                if name in self._challengers:
                    log.info("%s: no challenger any more; every request goes to the champion", name)
                    self._challengers = {k: v for k, v in self._challengers.items() if k != name}
                continue
            challenger = self._follow(name, "challenger", version, self._challengers)
            if challenger is not None:
                self._challengers = {**self._challengers, name: challenger}
                swapped.append(challenger)
        self.refreshed = True
        return swapped

    def _follow(self, name: str, alias: str, version: int | None, current: dict[str, ServedModel]) -> ServedModel | None:
        """The loaded and warmed ``version`` if ``alias`` moved to it, else None (also when it
        fails to load: logged, and the version in ``current`` keeps serving)."""
        now = current.get(name)
        if version is None or (now is not None and now.version == version):
            return None
        failed_version, failed_at = self._failed.get((name, alias), (None, 0.0))
        if failed_version == version and time.monotonic() - failed_at < RETRY_FAILED_AFTER:
            return None
        started = time.perf_counter()
        try:
            model = self.ws.registry.load(name, version)
            served = prepare(model, self.threads, self.prefer_onnx, self.batching, plan_path(self.ws, model))
        except Exception:
            log.exception("could not load %s v%d as %s; %s", name, version, alias,
                          f"still serving v{now.version}" if now else "not serving it")
            self._failed[(name, alias)] = (version, time.monotonic())
            return None
        self._failed.pop((name, alias), None)
        if self.on_load is not None:
            self.on_load(served, time.perf_counter() - started)
        log.info("serving %s v%d as %s (%s runtime)%s", name, version, alias, served.runtime.name,
                 f", replacing v{now.version}" if now else "")
        return served

    async def watch(self, interval: float) -> None:
        """Refresh now and then every ``interval`` seconds until cancelled; after a refresh that
        swapped a version in, settle the heap (``settle_heap``)."""
        while True:
            try:
                swapped = await anyio.to_thread.run_sync(self.refresh)
            except Exception:
                log.exception("checking the registry for moved champions failed; retrying")
            else:
                if swapped:
                    settle_heap()
            await asyncio.sleep(interval)
