"""Retraining: the champion's recipe on newer data, gated against the champion, promoted on success.

Newer data is the recipe's dataset (latest version, or the ``data`` ref given) plus, by default,
the production traffic that received ground truth since the last retrain: those rows (their
logged inputs, the label as target, the prediction time as the time column when the recipe splits
by time) are appended to the dataset as a new Delta version first, so the new model's lineage
names a dataset version like any other. A watermark in the operational store makes sure each
labelled prediction is added once, even when a retrain fails its gate. Those rows carry only the
model's inputs and the label: the dataset's other columns (identifiers, say) stay null in them,
and training checks only the columns a recipe uses against the contract.

A version that fails the gate stays registered (with its verdict) and an alert says why; the
champion keeps serving.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from serein.errors import NotFoundError

if TYPE_CHECKING:
    import pandas as pd

    from serein.train.recipe import Recipe
    from serein.workspace import Workspace

Progress = Callable[[str], None]


@dataclass
class RetrainResult:
    """The outcome of one retrain. ``new_version`` is None when no model could be trained."""

    model: str
    champion_before: int
    champion_after: int
    new_version: int | None
    promoted: bool
    dataset: str | None
    dataset_version: int | None
    feedback_rows: int
    gate: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    report_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _watermark_key(model: str) -> str:
    return f"retrain.label_watermark.{model}"


def _label_state(ws: Workspace, model: str) -> dict[str, Any]:
    """Where ``model``'s labels stand: ``watermark``, the feedback id up to which its labels are
    in its dataset (0: none yet), and how far the feedback ids are settled (``settled``, ``gap``:
    ``store.settled_upto``).

    The watermark counts labels, not logged rows: a label arriving late for a row logged long ago
    gets a new feedback id, so the next retrain takes it. (An earlier serein kept the log id of the
    last row it took, and passed over every later label of an earlier row. Its watermark stands
    here as the highest feedback id among the labelled rows up to it, so no row is taken twice;
    the next one kept the feedback id alone.)"""
    saved = ws.store.get_state(_watermark_key(model))
    if isinstance(saved, dict):
        return saved
    if saved is not None:
        return {"watermark": int(saved)}
    earlier = ws.store.get_state(f"retrain.feedback_watermark.{model}")
    return {"watermark": 0 if earlier is None else ws.store.last_feedback_id(model, int(earlier))}


def _new_labels(ws: Workspace, model: str, whole: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``model``'s labelled rows the next retrain takes (``store.labelled_after``, up to where the
    feedback ids are settled), and the label state to keep once they are taken."""
    state = _label_state(ws, model)
    watermark = int(state["watermark"])
    settled, gap = ws.store.settled_upto("feedback", max(watermark, int(state.get("settled", 0))), state.get("gap"))
    rows = ws.store.labelled_after(model, watermark, whole=whole, up_to_feedback_id=settled)
    upto = max((int(r["feedback_id"]) for r in rows), default=watermark)
    return rows, {"watermark": upto, "settled": settled, "gap": gap}


def pending_feedback(ws: Workspace, model: str) -> int:
    """How many labelled production rows of ``model`` the next retrain would add."""
    return len(_new_labels(ws, model)[0])


def feedback_frame(ws: Workspace, model: str, recipe: Recipe) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Production rows of ``model`` labelled since the last retrain took its labels (in the order
    the labels arrived: ``store.labelled_after``), as training rows.

    Returns the frame (features + target, + the time column when the recipe splits by time; empty
    when there is nothing new) and the label state to keep once it is in the dataset.
    """
    import pandas as pd

    rows, state = _new_labels(ws, model, whole=True)
    if not rows:
        return pd.DataFrame(), state
    frame = pd.DataFrame.from_records([r["inputs"] for r in rows])
    frame[recipe.target] = [r["label"] for r in rows]
    time_col = recipe.split.column if recipe.split.method == "time" else None
    if time_col and time_col not in frame.columns:
        frame[time_col] = pd.to_datetime([r["ts"] for r in rows], unit="s", utc=True)
    return frame, state


def _append_feedback(ws: Workspace, model: str, recipe: Recipe, dataset: str) -> int:
    """Append new labelled traffic to ``dataset``; returns the number of rows accepted. The label
    state is kept even when nothing is new: a gap in the feedback ids is settled over calls."""
    frame, state = feedback_frame(ws, model, recipe)
    accepted = 0 if frame.empty else int(ws.datasets.ingest(frame, dataset, mode="append", partial=True).accepted)
    ws.store.set_state(_watermark_key(model), state)
    return accepted


def retrain(ws: Workspace, model: str, data: str | None = None, include_feedback: bool = True,
            progress: Progress | None = None) -> RetrainResult:
    """Retrain ``model``'s champion recipe on newer data; promote the new version if it passes.

    ``data`` overrides the dataset ref (e.g. ``credit@7``); labelled traffic is appended to the
    recipe's dataset first unless ``include_feedback`` is False or an explicit version is given.
    """
    from serein.data.refs import DatasetRef
    from serein.train.recipe import Recipe
    from serein.train.trainer import train

    say = progress or (lambda _msg: None)
    champion = ws.registry.champion(model)
    if champion is None:
        raise NotFoundError(f"model {model!r} has no champion to retrain",
                            hint=f"train one first with `serein train RECIPE.yaml`, or promote a version")
    recipe = Recipe.from_dict(ws.registry.load(model, "champion").recipe)
    ref = data or recipe.data
    if ref is None:
        raise NotFoundError(f"the champion of {model!r} was not trained on a named dataset",
                            hint="pass --data NAME[@VERSION] to say what to retrain on")
    parsed = DatasetRef.parse(ref)

    feedback_rows = 0
    pinned = parsed.version is not None or parsed.timestamp is not None
    if include_feedback and not pinned:
        say("adding labelled production traffic to the dataset")
        feedback_rows = _append_feedback(ws, model, recipe, parsed.name)

    say(f"training {model} on {ref}")
    result = train(ws, recipe, data_ref=ref, promote=True, progress=say)
    gate = result.gate.to_dict()
    reason = "" if result.promoted else "; ".join(result.gate.reasons) or "the gate did not pass"
    if not result.promoted:
        ws.alerts.raise_alert(
            model, "retrain_failed", "warning",
            f"retrained version {result.version} of {model} was not promoted: {reason}",
            details={"version": result.version, "gate": gate},
        )
    after = ws.registry.champion(model)
    return RetrainResult(
        model=model,
        champion_before=champion.version,
        champion_after=after.version if after else champion.version,
        new_version=result.version,
        promoted=result.promoted,
        dataset=result.dataset,
        dataset_version=result.dataset_version,
        feedback_rows=feedback_rows,
        gate=gate,
        reason=reason,
        report_path=result.report_path,
    )
