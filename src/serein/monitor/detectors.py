"""Streaming change detectors on a model's error and score streams, resumable across runs.

Two streams per model version, read from the prediction log:

- the **error stream**, one value per prediction whose label has arrived, in label-arrival order:
  0/1 misclassification for classifiers, the absolute error for regressors;
- the **score stream**, one value per logged prediction in log order: the positive-class (or top)
  score of a classifier, the predicted value of a regressor.

Each stream feeds three detectors; a change is reported with its ``direction`` (``up`` or
``down``) and the levels before and after it:

- ADWIN (River's ``river.drift.ADWIN``, defaults: ``delta=0.002``): adaptive window, finds a change
  in the mean with a bound on false positives. It fires on a *falling* error too (a model that
  gets better looks like change), so alerts only follow changes in the degrading direction.
- Page-Hinkley (River's ``river.drift.PageHinkley``, defaults: ``delta=0.005``, ``threshold=50``).
- CUSUM (here; ``k=0.5``, ``h=5``): two-sided cumulative sums ``S+ = max(0, S+ + z - k)`` and
  ``S- = max(0, S- - z - k)`` of standardised values ``z``, a change when either exceeds ``h``.
  It runs on means of ``block`` consecutive values (default 100), standardised by the reference
  mean and ``σ/√block``: on single 0/1 errors the sums would cross ``h`` every few hundred values
  by chance (measured on 10 % errors: 0.4 false changes per 10k values with blocks of 50, 0.1 with
  blocks of 100). Mean and σ come from the reference (holdout error rate, profile score distribution)
  when known, else from the first ``warmup`` blocks (default 10). After a change CUSUM learns the
  new level from the next ``warmup`` blocks, as ADWIN and Page-Hinkley restart after theirs, so a
  lasting shift is reported once, not every few blocks.

State between runs: a monitor that runs every few minutes feeds only values after a watermark
(the log id for scores, the feedback id for errors), and resumes each detector where the last run
stopped. The state is serein's own JSON, never a pickle (unpickling stored bytes can run code):
Page-Hinkley and CUSUM keep their few numbers; River's ADWIN (a Rust object that cannot be
serialised) keeps the values seen since its last reset, replayed into a fresh ADWIN on resume,
which rebuilds it exactly. That replay history is capped at ``adwin_history`` values (default
20,000, the most recent kept): beyond it, ADWIN resumes on the recent part of a long quiet stream.
A state that does not parse, or that was made with other settings, is discarded (a fresh start).

>>> c = Cusum(mean=0.0, std=1.0, block=1)
>>> [c.update(x) for x in [0.0, 2.0, 2.0, 2.0, 2.0]]
[None, None, None, None, 'up']
>>> c.s_pos, c.mean
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
STATE_VERSION = 1


@dataclass(frozen=True)
class DetectorSettings:
    """Detector parameters, overridable in ``serein.yaml`` under ``monitor.detectors``."""

    adwin_delta: float = 0.002
    adwin_history: int = 20_000
    ph_delta: float = 0.005
    ph_threshold: float = 50.0
    ph_min_instances: int = 30
    cusum_k: float = 0.5
    cusum_h: float = 5.0
    cusum_block: int = 100
    cusum_warmup: int = 10

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


class Cusum:
    """Two-sided CUSUM on standardised block means; ``update`` returns ``"up"``/``"down"`` on a change.

    ``mean``/``std`` are the per-value reference mean and standard deviation; when not given (and
    after each change) they are estimated from the values of the next ``warmup`` blocks (no change
    is reported while warming up).
    """

    def __init__(self, k: float = 0.5, h: float = 5.0, mean: float | None = None, std: float | None = None,
                 block: int = 100, warmup: int = 10) -> None:
        self.k, self.h, self.block, self.warmup = float(k), float(h), int(block), int(warmup)
        self.mean, self.std = mean, std
        self.s_pos = self.s_neg = 0.0
        self.block_sum, self.block_n = 0.0, 0
        self.warm = [0.0, 0.0, 0.0]  # count, sum and sum of squares of the values while warming up

    def update(self, x: float) -> str | None:
        warming = self.mean is None or self.std is None
        if warming:
            self.warm = [self.warm[0] + 1, self.warm[1] + x, self.warm[2] + x * x]
        self.block_sum += x
        self.block_n += 1
        if self.block_n < self.block:
            return None
        m = self.block_sum / self.block
        self.block_sum, self.block_n = 0.0, 0
        if warming:
            n, total, squares = self.warm
            if n >= self.warmup * self.block:
                self.mean = total / n
                self.std = math.sqrt(max(squares - total * total / n, 0.0) / (n - 1))
                self.warm = [0.0, 0.0, 0.0]
            return None
        scale = max(self.std, 1e-12) / math.sqrt(self.block)
        z = (m - self.mean) / scale
        self.s_pos = max(0.0, self.s_pos + z - self.k)
        self.s_neg = max(0.0, self.s_neg - z - self.k)
        direction = "up" if self.s_pos > self.h else "down" if self.s_neg > self.h else None
        if direction:
            self.s_pos = self.s_neg = 0.0
            self.mean = self.std = None
        return direction

    def state(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("mean", "std", "s_pos", "s_neg", "block_sum", "block_n", "warm")}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Resume from ``state()``; a malformed state raises KeyError, TypeError or ValueError."""
        self.mean = None if state["mean"] is None else float(state["mean"])
        self.std = None if state["std"] is None else float(state["std"])
        self.s_pos, self.s_neg, self.block_sum = float(state["s_pos"]), float(state["s_neg"]), float(state["block_sum"])
        self.block_n = int(state["block_n"])
        self.warm = [float(v) for v in state["warm"]]
        if len(self.warm) != 3:
            raise ValueError("bad CUSUM warm-up state")


def _pack(values: Sequence[float]) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f8").tobytes()).decode()


def _unpack(text: str) -> list[float]:
    return np.frombuffer(base64.b64decode(text.encode(), validate=True), dtype="<f8").tolist()


class StreamDetectors:
    """ADWIN, Page-Hinkley and CUSUM on one stream of numbers, with a JSON state to resume from."""

    def __init__(self, settings: DetectorSettings = DetectorSettings(), mean: float | None = None,
                 std: float | None = None) -> None:
        from river.drift import ADWIN, PageHinkley

        self.settings = s = settings
        self.adwin = ADWIN(delta=s.adwin_delta)
        self.ph = PageHinkley(min_instances=s.ph_min_instances, delta=s.ph_delta, threshold=s.ph_threshold)
        self.cusum = Cusum(k=s.cusum_k, h=s.cusum_h, mean=mean, std=std, block=s.cusum_block, warmup=s.cusum_warmup)
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
        if self.adwin.drift_detected:
            dropped = width + 1 - self.adwin.width
            before = (total + x - self.adwin.total) / dropped if dropped > 0 else float("nan")
            after = self.adwin.estimation
            changes.append(Change("adwin", self.n, ref_id, "up" if after > before else "down", before, after))
            self.history = []
        elif len(self.history) > 2 * self.settings.adwin_history:
            self._replay_adwin(self.history[-self.settings.adwin_history:])
        before_ph = self.ph._x_mean.get() if not self.ph.drift_detected else x
        self.ph.update(x)
        self.tail.append(x)
        if len(self.tail) > TAIL:
            del self.tail[0]
        if self.ph.drift_detected:
            up = self.ph._sum_increase - self.ph._min_increase > self.ph.threshold
            changes.append(Change("page_hinkley", self.n, ref_id, "up" if up else "down", before_ph, self.level))
        cusum_mean = self.cusum.mean
        direction = self.cusum.update(x)
        if direction:
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
        ph = self.ph
        fresh = ph.drift_detected  # River resets Page-Hinkley on the next update: store it reset
        return {
            "v": STATE_VERSION, "settings": self.settings.fingerprint(), "n": self.n, "tail": self.tail,
            "adwin_history": _pack(self.history[-self.settings.adwin_history:]),
            "ph": None if fresh else {"n": ph._x_mean.n, "mean": ph._x_mean.get(), "sum_increase": ph._sum_increase,
                                      "sum_decrease": ph._sum_decrease, "min_increase": ph._min_increase,
                                      "max_decrease": ph._max_decrease},
            "cusum": self.cusum.state(),
        }

    def restore(self, state: Mapping[str, Any]) -> bool:
        """Resume from ``state()``; False (and unchanged) when it is unusable or from other settings."""
        try:
            if state.get("v") != STATE_VERSION or state.get("settings") != self.settings.fingerprint():
                return False
            history = _unpack(state["adwin_history"])
            ph = state["ph"]
            ph_values = None if ph is None else {k: float(ph[k]) for k in (
                "n", "mean", "sum_increase", "sum_decrease", "min_increase", "max_decrease")}
            n, tail = int(state["n"]), [float(t) for t in state["tail"]][-TAIL:]
            cusum = Cusum(self.cusum.k, self.cusum.h, block=self.cusum.block, warmup=self.cusum.warmup)
            cusum.restore(state["cusum"])
        except (KeyError, TypeError, ValueError, AttributeError):
            return False
        self._replay_adwin(history)
        if ph_values is not None:
            self.ph._x_mean.n, self.ph._x_mean._mean = ph_values["n"], ph_values["mean"]
            for key in ("sum_increase", "sum_decrease", "min_increase", "max_decrease"):
                setattr(self.ph, f"_{key}", ph_values[key])
        self.cusum, self.n, self.tail = cusum, n, tail
        return True


# -- the model's streams ----------------------------------------------------------------------
def _state_key(model: str, version: int, stream: str) -> str:
    return f"detectors.{model}.v{version}.{stream}"


def error_value(task: str, prediction: Any, label: Any) -> float:
    """One error: 0/1 misclassification, or the absolute error of a regressor.

    >>> error_value("classification", "yes", "no"), error_value("regression", 2.5, 3.0)
    (1.0, 0.5)
    """
    if task == "regression":
        return abs(float(prediction) - float(label))
    return float(str(prediction) != str(label))


def _references(loaded: LoadedModel) -> dict[str, tuple[float | None, float | None]]:
    """Per stream, the reference mean and per-value σ from the profile (None where unknown)."""
    profile = loaded.profile or {}
    perf = profile.get("performance") or {}
    pred = profile.get("prediction") or {}
    error: tuple[float | None, float | None] = (None, None)
    if loaded.task != "regression" and "accuracy" in perf:
        p = 1.0 - float(perf["accuracy"])
        error = (p, math.sqrt(p * (1 - p)) if 0 < p < 1 else None)
    part = pred.get("values") if pred.get("kind") == "regression" else pred.get("scores")
    score = (float(part["mean"]), float(part["std"]) or None) if part and part.get("mean") is not None else (None, None)
    return {"error": error if error[1] else (None, None), "score": score if score[1] else (None, None)}


def run_detectors(ws: Workspace, loaded: LoadedModel) -> dict[str, Any]:
    """Feed the champion's new errors and scores (after each stream's watermark) to the detectors,
    store their state, and return per stream how many values were fed and their mean, the
    reference mean and σ, and the changes found."""
    settings = DetectorSettings.from_config(ws.config["monitor"].get("detectors"))
    refs = _references(loaded)
    out: dict[str, Any] = {}
    for stream in ("error", "score"):
        key = _state_key(loaded.name, loaded.version, stream)
        saved = ws.store.get_state(key) or {}
        detectors = StreamDetectors(settings, *refs[stream])
        resumed = bool(saved.get("detectors")) and detectors.restore(saved["detectors"])
        watermark = int(saved.get("watermark", 0))  # new traffic only, even when the detectors restart
        if stream == "error":
            rows = ws.store.labelled_after(loaded.name, after_feedback_id=watermark)
            values = [(error_value(loaded.task, r["prediction"], r["label"]), r["feedback_id"])
                      for r in rows if r["version"] == loaded.version]
            upto = max((r["feedback_id"] for r in rows), default=watermark)
        else:
            rows = ws.store.prediction_rows(loaded.name, after_id=watermark)
            ours = [r for r in rows if r["version"] == loaded.version]
            values = [(r["score"] if loaded.task != "regression" else r["prediction"], r["id"]) for r in ours]
            values = [(float(v), i) for v, i in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            upto = max((r["id"] for r in rows), default=watermark)
        changes = [c for v, ref_id in values for c in detectors.update(v, ref_id)]
        ws.store.set_state(key, {"watermark": upto, "detectors": detectors.state()})
        out[stream] = {"values": len(values), "seen": detectors.n, "resumed": resumed,
                       "mean": float(np.mean([v for v, _ in values])) if values else None,
                       "reference": refs[stream][0], "reference_std": refs[stream][1],
                       "changes": [c.to_dict() for c in changes]}
    return out
