"""Streaming change detectors on a model's error and score streams, scale-free and resumable.

Two streams per model version, read from the prediction log:

- the **error stream**, one value per prediction whose label has arrived, in label-arrival order:
  0/1 misclassification for classifiers, the absolute error for regressors;
- the **score stream**, one value per logged prediction in log order: the positive-class (or top)
  score of a classifier, the predicted value of a regressor.

Each stream feeds three detectors; a change is reported with its ``direction`` (``up`` or
``down``) and the levels before and after it.

**Scale.** Page-Hinkley and CUSUM see the stream standardised, ``z = (x - mean) / σ``, so their
parameters are in σ units and mean the same on a 0/1 error stream, on absolute errors in dollars
and on scores. Mean and σ come from the reference profile when it has them (the holdout's error
rate, or for a regressor the holdout's absolute errors: mean MAE and σ = sqrt(RMSE² − MAE²); the
profile's score or prediction distribution), otherwise from the first ``warmup`` values (1,000),
kept in the detector state; and after each change a detector learns the new level and σ from the
next ``warmup`` values, so a lasting shift is reported once. A 0/1 stream's σ is
sqrt(p̃(1 − p̃)) with p̃ = (errors + 1)/(n + 2): a holdout with no error gives no σ of 0.

- ADWIN (River's ``river.drift.ADWIN``, ``delta=0.002``) on the raw values: adaptive window,
  finds a change in the mean with a bound on false positives. It fires on a *falling* error too
  (a model that gets better looks like change), so alerts only follow changes in the degrading
  direction.
- Page-Hinkley (River's ``river.drift.PageHinkley``, two-sided) on ``z`` winsorised at ±``clip``
  (5 σ: one outlier, or one error on a stream of rare errors, moves the sums by at most 5):
  ``delta=0.2`` σ, ``threshold=50`` σ. It compares each value with the running mean since its
  last change, so it needs only σ from the reference.
- CUSUM (here) on means of ``block`` values (100), standardised by the reference mean and
  ``σ/√block``: ``S+ = max(0, S+ + z − k')``, ``S− = max(0, S− − z − k')``, a change when either
  exceeds ``h`` (8). The allowance ``k' = k + 2·√(block/n)`` (``k`` = 0.5) widens ``k`` by two
  standard errors of a reference mean estimated from ``n`` values (the holdout's rows, or the
  warm-up's), so CUSUM does not report the reference's own sampling error as a change.

The defaults come from ``benchmarks/detection.py`` (``docs/monitoring.md`` says how).

State between runs: a monitor that runs every few minutes feeds only values after a watermark
(the log id for scores, the feedback id for errors) and up to where the ids are settled (on
PostgreSQL a concurrent writer may commit id 7 after id 8: ``store.settled_upto``), and resumes
each detector where the last run stopped. The state is serein's own JSON, never a pickle (unpickling stored bytes can run code):
Page-Hinkley and CUSUM keep their few numbers and their scale; River's ADWIN (a Rust object that
cannot be serialised) keeps the values seen since its last reset, replayed into a fresh ADWIN on
resume, which rebuilds it exactly. That replay history is capped at ``adwin_history`` values
(default 20,000, the most recent kept): beyond it, ADWIN resumes on the recent part of a long
quiet stream. A state that does not parse, or that was made with other settings, is discarded (a
fresh start).

>>> c = Cusum(k=0.5, h=5.0, scale=Scale(mean=0.0, std=1.0), block=1)
>>> [c.update(x) for x in [0.0, 2.0, 2.0, 2.0, 2.0]]
[None, None, None, None, 'up']
>>> c.s_pos, c.scale.mean
(0.0, None)
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from serein.errors import UsageError

if TYPE_CHECKING:
    from serein.registry.loaded import LoadedModel
    from serein.workspace import Workspace

DETECTORS = ("adwin", "page_hinkley", "cusum")
TAIL = 30  # recent values kept to state the level after a change
STATE_VERSION = 2
REFERENCE_SE = 2.0  # CUSUM's allowance grows by this many standard errors of the reference mean


@dataclass(frozen=True)
class DetectorSettings:
    """Detector parameters, overridable in ``serein.yaml`` under ``monitor.detectors``.
    Page-Hinkley's ``delta``/``threshold``, ``clip`` and CUSUM's ``k``/``h`` are in σ units."""

    adwin_delta: float = 0.002
    adwin_history: int = 20_000
    ph_delta: float = 0.2
    ph_threshold: float = 50.0
    ph_min_instances: int = 30
    clip: float = 5.0
    cusum_k: float = 0.5
    cusum_h: float = 8.0
    cusum_block: int = 100
    warmup: int = 1000

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> DetectorSettings:
        """Settings from a mapping; unknown keys and bad values are named in a UsageError."""
        config = dict(config or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise UsageError(f"monitor.detectors: unknown key(s) {', '.join(unknown)}",
                             hint=f"known keys are {', '.join(known)}")
        values: dict[str, Any] = {}
        for key, value in config.items():
            integer = isinstance(getattr(cls, key), int)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 \
                    or (integer and value != int(value)):
                raise UsageError(f"monitor.detectors.{key} must be a positive {'integer' if integer else 'number'}, "
                                 f"got {value!r}")
            values[key] = int(value) if integer else float(value)
        return cls(**values)

    def fingerprint(self) -> str:
        return hashlib.sha256(repr(sorted(asdict(self).items())).encode()).hexdigest()[:16]


@dataclass
class Change:
    """A change one detector found at stream position ``index`` (0-based over all runs)."""

    detector: str
    index: int
    ref_id: int | None
    direction: str
    before: float
    after: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rate_std(errors: float, n: float) -> float:
    """σ of a 0/1 stream with ``errors`` ones in ``n`` values, from the smoothed rate
    p̃ = (errors + 1)/(n + 2): never 0, so a clean holdout does not make every error a change.

    >>> round(rate_std(0, 1498), 4), round(rate_std(49, 498), 4)
    (0.0258, 0.3)
    """
    p = (errors + 1) / (n + 2)
    return math.sqrt(p * (1 - p))


class Scale:
    """The mean and σ that standardise a stream: a reference's, or learnt from the first ``warmup``
    values (and again after ``forget``, once a detector found a change). ``n`` is how many values
    the estimate rests on (None: exact)."""

    def __init__(self, mean: float | None = None, std: float | None = None, n: int | None = None,
                 warmup: int = 1000, binary: bool = False) -> None:
        known = mean is not None and std is not None
        self.mean, self.std, self.n = (float(mean), float(std), n) if known else (None, None, None)
        self.warmup, self.binary = int(warmup), binary
        self.warm = [0.0, 0.0, 0.0]  # count, mean and sum of squared deviations (Welford) while learning

    @property
    def ready(self) -> bool:
        return self.mean is not None

    def learn(self, x: float) -> None:
        """One warm-up value; after ``warmup`` of them mean and σ are set (σ of a 0/1 stream smoothed)."""
        count, mean, m2 = self.warm
        count += 1
        step = x - mean
        mean += step / count
        m2 += step * (x - mean)
        self.warm = [count, mean, m2]
        if count >= self.warmup:
            std = rate_std(mean * count, count) if self.binary else math.sqrt(m2 / max(count - 1, 1))
            self.mean, self.std, self.n = mean, max(std, 1e-12 * max(1.0, abs(mean))), int(count)
            self.warm = [0.0, 0.0, 0.0]

    def forget(self) -> None:
        """Learn the level again from the next ``warmup`` values."""
        self.mean = self.std = self.n = None
        self.warm = [0.0, 0.0, 0.0]

    def z(self, x: float) -> float:
        return (x - self.mean) / self.std  # type: ignore[operator]

    def state(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "n": self.n, "warm": self.warm}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Resume from ``state()``; a malformed state raises KeyError, TypeError or ValueError."""
        known = state["mean"] is not None
        self.mean = float(state["mean"]) if known else None
        self.std = float(state["std"]) if known else None
        self.n = None if state["n"] is None else int(state["n"])
        self.warm = [float(v) for v in state["warm"]]
        if len(self.warm) != 3:
            raise ValueError("bad warm-up state")

    def copy(self) -> Scale:
        twin = Scale(warmup=self.warmup, binary=self.binary)
        twin.restore(self.state())
        return twin


class Cusum:
    """Two-sided CUSUM on standardised block means; ``update`` returns ``"up"``/``"down"`` on a change.

    ``k`` and ``h`` are in σ units of a block mean; ``k`` is widened by ``REFERENCE_SE`` standard
    errors of the scale's mean. Nothing is reported while the scale is learning.
    """

    def __init__(self, k: float = 0.5, h: float = 5.0, scale: Scale | None = None, block: int = 100) -> None:
        self.k, self.h, self.block = float(k), float(h), int(block)
        self.scale = scale if scale is not None else Scale()
        self.s_pos = self.s_neg = 0.0
        self.block_sum, self.block_n = 0.0, 0

    @property
    def allowance(self) -> float:
        n = self.scale.n
        return self.k + (REFERENCE_SE * math.sqrt(self.block / n) if n else 0.0)

    def update(self, x: float) -> str | None:
        if not self.scale.ready:
            self.scale.learn(x)
            return None
        self.block_sum += x
        self.block_n += 1
        if self.block_n < self.block:
            return None
        z = self.scale.z(self.block_sum / self.block) * math.sqrt(self.block)
        self.block_sum, self.block_n = 0.0, 0
        k = self.allowance
        self.s_pos = max(0.0, self.s_pos + z - k)
        self.s_neg = max(0.0, self.s_neg - z - k)
        direction = "up" if self.s_pos > self.h else "down" if self.s_neg > self.h else None
        if direction:
            self.s_pos = self.s_neg = 0.0
            self.scale.forget()
        return direction

    def state(self) -> dict[str, Any]:
        return {"scale": self.scale.state(), "s_pos": self.s_pos, "s_neg": self.s_neg,
                "block_sum": self.block_sum, "block_n": self.block_n}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Resume from ``state()``; a malformed state raises KeyError, TypeError or ValueError."""
        self.scale.restore(state["scale"])
        self.s_pos, self.s_neg, self.block_sum = float(state["s_pos"]), float(state["s_neg"]), float(state["block_sum"])
        self.block_n = int(state["block_n"])


class ScaledPageHinkley:
    """River's two-sided Page-Hinkley on the standardised stream winsorised at ±``clip``;
    ``update`` returns ``(direction, level before)`` on a change. Idle while the scale is learning."""

    def __init__(self, delta: float, threshold: float, min_instances: int, clip: float, scale: Scale) -> None:
        from river.drift import PageHinkley

        self.ph = PageHinkley(min_instances=min_instances, delta=delta, threshold=threshold)
        self.clip, self.scale = float(clip), scale
        self.raw = [0, 0.0]  # count and sum of the raw values since the test's last reset

    def update(self, x: float) -> tuple[str, float] | None:
        if not self.scale.ready:
            self.scale.learn(x)
            return None
        if self.ph.drift_detected:
            self.raw = [0, 0.0]  # River starts afresh on this update
        before = self.raw[1] / self.raw[0] if self.raw[0] else x
        self.ph.update(min(max(self.scale.z(x), -self.clip), self.clip))
        self.raw = [self.raw[0] + 1, self.raw[1] + x]
        if not self.ph.drift_detected:
            return None
        self.scale.forget()
        return ("up" if self.ph._sum_increase - self.ph._min_increase > self.ph.threshold else "down"), before

    _FIELDS = ("sum_increase", "sum_decrease", "min_increase", "max_decrease")

    def state(self) -> dict[str, Any]:
        ph = self.ph
        fresh = ph.drift_detected  # River resets Page-Hinkley on the next update: store it reset
        test = None if fresh else {"n": ph._x_mean.n, "mean": ph._x_mean.get(),
                                   **{k: getattr(ph, f"_{k}") for k in self._FIELDS}}
        return {"scale": self.scale.state(), "test": test, "raw": [0, 0.0] if fresh else self.raw}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Resume from ``state()`` (into a fresh instance); a malformed state raises KeyError,
        TypeError or ValueError."""
        test = state["test"]
        values = None if test is None else {k: float(test[k]) for k in ("n", "mean", *self._FIELDS)}
        count, total = state["raw"]
        self.scale.restore(state["scale"])
        self.raw = [int(count), float(total)]
        if values is not None:
            self.ph._x_mean.n, self.ph._x_mean._mean = values["n"], values["mean"]
            for key in self._FIELDS:
                setattr(self.ph, f"_{key}", values[key])


def _pack(values: Sequence[float]) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f8").tobytes()).decode()


def _unpack(text: str) -> list[float]:
    return np.frombuffer(base64.b64decode(text.encode(), validate=True), dtype="<f8").tolist()


class StreamDetectors:
    """ADWIN, Page-Hinkley and CUSUM on one stream of numbers, with a JSON state to resume from.

    ``mean``/``std`` (from ``n`` values) are the reference's, when known; ``binary`` marks a 0/1
    stream (its σ is then learnt from a smoothed rate)."""

    def __init__(self, settings: DetectorSettings = DetectorSettings(), mean: float | None = None,
                 std: float | None = None, n: int | None = None, binary: bool = False) -> None:
        from river.drift import ADWIN

        self.settings = s = settings
        self.reference = Scale(mean, std, n, warmup=s.warmup, binary=binary)
        self.adwin = ADWIN(delta=s.adwin_delta)
        self.ph = ScaledPageHinkley(s.ph_delta, s.ph_threshold, s.ph_min_instances, s.clip, self.reference.copy())
        self.cusum = Cusum(k=s.cusum_k, h=s.cusum_h, scale=self.reference.copy(), block=s.cusum_block)
        self.n = 0
        self.history: list[float] = []  # values since ADWIN's last reset (replayed on resume)
        self.tail: list[float] = []

    def update(self, x: float, ref_id: int | None = None) -> list[Change]:
        """Feed one value; the changes it completes (at most one per detector)."""
        x = float(x)
        changes: list[Change] = []
        # ADWIN: the level before is the mean of the part of the window it dropped
        width, total = self.adwin.width, self.adwin.total
        if self.adwin.drift_detected:
            width, total = 0, 0.0  # River starts a fresh window on this update
        self.adwin.update(x)
        self.history.append(x)
        self.tail.append(x)
        if len(self.tail) > TAIL:
            del self.tail[0]
        if self.adwin.drift_detected:
            dropped = width + 1 - self.adwin.width
            before = (total + x - self.adwin.total) / dropped if dropped > 0 else float("nan")
            after = self.adwin.estimation
            changes.append(Change("adwin", self.n, ref_id, "up" if after > before else "down", before, after))
            self.history = []
        elif len(self.history) > 2 * self.settings.adwin_history:
            self._replay_adwin(self.history[-self.settings.adwin_history:])
        if found := self.ph.update(x):
            changes.append(Change("page_hinkley", self.n, ref_id, found[0], found[1], self.level))
        cusum_mean = self.cusum.scale.mean
        if direction := self.cusum.update(x):
            changes.append(Change("cusum", self.n, ref_id, direction, float(cusum_mean), self.level))
        self.n += 1
        return changes

    @property
    def level(self) -> float | None:
        """The mean of the last few values (None before any)."""
        return sum(self.tail) / len(self.tail) if self.tail else None

    def _replay_adwin(self, values: list[float]) -> None:
        """A fresh ADWIN fed ``values``; a change inside them restarts the history after it."""
        from river.drift import ADWIN

        self.adwin = ADWIN(delta=self.settings.adwin_delta)
        self.history = []
        for v in values:
            self.adwin.update(v)
            self.history.append(v)
            if self.adwin.drift_detected:
                self.history = []

    # -- persisted state -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION, "settings": self.settings.fingerprint(), "n": self.n, "tail": self.tail,
            "adwin_history": _pack(self.history[-self.settings.adwin_history:]),
            "ph": self.ph.state(), "cusum": self.cusum.state(),
        }

    def restore(self, state: Mapping[str, Any]) -> bool:
        """Resume from ``state()``; False (and unchanged) when it is unusable or from other settings."""
        s = self.settings
        try:
            if state.get("v") != STATE_VERSION or state.get("settings") != s.fingerprint():
                return False
            history = _unpack(state["adwin_history"])
            n, tail = int(state["n"]), [float(t) for t in state["tail"]][-TAIL:]
            ph = ScaledPageHinkley(s.ph_delta, s.ph_threshold, s.ph_min_instances, s.clip, self.reference.copy())
            ph.restore(state["ph"])
            cusum = Cusum(k=s.cusum_k, h=s.cusum_h, scale=self.reference.copy(), block=s.cusum_block)
            cusum.restore(state["cusum"])
        except (KeyError, TypeError, ValueError, AttributeError):
            return False
        self._replay_adwin(history)
        self.ph, self.cusum, self.n, self.tail = ph, cusum, n, tail
        return True


# -- the model's streams ----------------------------------------------------------------------
def _state_key(model: str, version: int, stream: str) -> str:
    return f"detectors.{model}.v{version}.{stream}"


def error_value(task: str, prediction: Any, label: Any) -> float:
    """One error: 0/1 misclassification (a label that is the predicted class's number in another
    type counts as it: JSON feedback 1.0 for the class 1, 1 for True), or the absolute error of a
    regressor.

    >>> error_value("classification", "yes", "no"), error_value("regression", 2.5, 3.0)
    (1.0, 0.5)
    >>> error_value("classification", 1, 1.0), error_value("classification", 1, 0.0), error_value("classification", True, 1)
    (0.0, 1.0, 0.0)
    """
    if task == "regression":
        return abs(float(prediction) - float(label))
    if isinstance(label, (int, float)) and isinstance(prediction, (int, float)) and type(label) is not type(prediction):
        return float(float(label) != float(prediction))
    return float(str(prediction) != str(label))


Reference = tuple[float | None, float | None, int | None]


def references(profile: Mapping[str, Any] | None, task: str) -> dict[str, Reference]:
    """Per stream, the reference mean, per-value σ and the number of holdout values behind them,
    from a reference profile (Nones where unknown): the error rate (σ of the smoothed rate) or the
    absolute errors' mean (MAE) and σ (sqrt(RMSE² − MAE²)); the scores' or predictions' moments.

    >>> references({"n_rows": 400, "performance": {"mae": 3.0, "rmse": 5.0}}, "regression")["error"]
    (3.0, 4.0, 400)
    """
    profile = profile or {}
    perf = profile.get("performance") or {}
    pred = profile.get("prediction") or {}
    n = profile.get("n_rows")
    error: Reference = (None, None, None)
    if task == "regression" and "mae" in perf and "rmse" in perf:
        mae, rmse = float(perf["mae"]), float(perf["rmse"])
        error = (mae, math.sqrt(max(rmse * rmse - mae * mae, 0.0)), n)
    elif task != "regression" and "accuracy" in perf and n:
        p = 1.0 - float(perf["accuracy"])
        error = (p, rate_std(p * n, n), n)
    part = pred.get("values") if pred.get("kind") == "regression" else pred.get("scores")
    score: Reference = (None, None, None)
    if part and part.get("mean") is not None:
        score = (float(part["mean"]), float(part["std"]), int(part["count"]) - int(part.get("n_nulls", 0)))
    return {k: v if v[1] else (None, None, None) for k, v in (("error", error), ("score", score))}


def run_detectors(ws: Workspace, loaded: LoadedModel) -> dict[str, Any]:
    """Feed the champion's new errors and scores (after each stream's watermark) to the detectors,
    store their state, and return per stream how many values were fed and their mean, the
    reference mean and σ, and the changes found."""
    settings = DetectorSettings.from_config(ws.config["monitor"].get("detectors"))
    refs = references(loaded.profile, loaded.task)
    out: dict[str, Any] = {}
    for stream in ("error", "score"):
        key = _state_key(loaded.name, loaded.version, stream)
        saved = ws.store.get_state(key) or {}
        detectors = StreamDetectors(settings, *refs[stream], binary=stream == "error" and loaded.task != "regression")
        resumed = bool(saved.get("detectors")) and detectors.restore(saved["detectors"])
        watermark = int(saved.get("watermark", 0))  # new traffic only, even when the detectors restart
        # ids committed out of order (PostgreSQL, concurrent writers) are read once they are in
        settled, gap = ws.store.settled_upto("feedback" if stream == "error" else "predictions",
                                             max(watermark, int(saved.get("settled", 0))), saved.get("gap"))
        if stream == "error":
            rows = ws.store.labelled_after(loaded.name, after_feedback_id=watermark, up_to_feedback_id=settled)
            values = [(error_value(loaded.task, r["prediction"], r["label"]), r["feedback_id"])
                      for r in rows if r["version"] == loaded.version]
            upto = max((r["feedback_id"] for r in rows), default=watermark)  # a label waiting for its row stays
        else:
            rows = ws.store.prediction_rows(loaded.name, after_id=watermark, up_to_id=settled)
            ours = [r for r in rows if r["version"] == loaded.version]
            values = [(r["score"] if loaded.task != "regression" else r["prediction"], r["id"]) for r in ours]
            values = [(float(v), i) for v, i in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            upto = settled
        changes = [c for v, ref_id in values for c in detectors.update(v, ref_id)]
        ws.store.set_state(key, {"watermark": upto, "settled": settled, "gap": gap, "detectors": detectors.state()})
        out[stream] = {"values": len(values), "seen": detectors.n, "resumed": resumed,
                       "mean": float(np.mean([v for v, _ in values])) if values else None,
                       "reference": refs[stream][0], "reference_std": refs[stream][1],
                       "changes": [c.to_dict() for c in changes]}
    return out
