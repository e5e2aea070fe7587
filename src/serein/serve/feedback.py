"""Feedback: ground-truth labels for earlier predictions, matched by request id.

A body is one entry or a list of entries ``{"request_id", "label"}``; for a request of several
rows ``label`` is a list with one label per row, or the entry names its ``row``. Labels must be one
of the model's classes (a classifier) or a finite number (a regressor).

A row has one label: a later request's label for it replaces the stored one (a late correction),
so monitoring counts the row once, with its latest label. One body labelling a row twice is
refused (422), since which label is meant would be a guess.
"""

from __future__ import annotations

from typing import Any

from serein.errors import NotFoundError, ValidationFailed
from serein.serve.models import ServedModel
from serein.serve.payloads import REQUEST_ID, HttpError

FEEDBACK_KEYS = frozenset({"request_id", "row", "label"})


def feedback_items(served: ServedModel, body: Any, known: dict[str, tuple[str, int]]) -> list[dict[str, Any]]:
    """Feedback entries expanded to one ``{request_id, row, model, label}`` item per labelled row.
    Two entries labelling the same row are refused: which of the two is meant is a guess."""
    items: list[dict[str, Any]] = []
    labelled: dict[tuple[str, int], str] = {}  # (request id, row) -> the entry that labels it
    for n, entry in enumerate(body):
        rid = entry["request_id"]
        model, n_rows = known[rid]
        where = f"feedback item {n}" if len(body) > 1 else "feedback"
        if model != served.name:
            raise NotFoundError(f"{where}: request id {rid!r} was not served by model {served.name!r}",
                                hint=f"send it to /v1/models/{model}/feedback")
        try:
            for row, label in _row_labels(entry, n_rows):
                first = labelled.setdefault((rid, row), where)
                if first != where:
                    raise ValidationFailed(f"row {row} is labelled by {first} too",
                                           hint="send one label a row; a later request replaces a stored label")
                items.append({"request_id": rid, "row": row, "model": model, "label": served.check_label(label)})
        except ValidationFailed as exc:
            raise ValidationFailed(f"{where} (request id {rid!r}): {exc.message}", exc.hint) from None
    return items


def _row_labels(entry: dict[str, Any], n_rows: int) -> list[tuple[int, Any]]:
    """The ``(row, label)`` pairs an entry gives for a request of ``n_rows`` rows."""
    label, row = entry["label"], entry.get("row")
    if row is not None:
        if type(row) is not int or not 0 <= row < n_rows:
            raise ValidationFailed(f"'row' must be an integer from 0 to {n_rows - 1}")
        return [(row, label)]
    if isinstance(label, list):
        if len(label) != n_rows:
            raise ValidationFailed(f"'label' lists {len(label)} labels but the request had {n_rows} rows")
        return list(enumerate(label))
    if n_rows > 1:
        raise ValidationFailed(f"the request had {n_rows} rows: give 'label' as a list of {n_rows} labels, "
                               "or name the 'row'")
    return [(0, label)]


def feedback_entries(body: Any, max_rows: int) -> list[dict[str, Any]]:
    """The feedback body as a list of entries, each checked for its keys and request id."""
    entries = body if isinstance(body, list) else [body]
    example = 'send {"request_id": "...", "label": ...} or a list of them'
    if not entries:
        raise ValidationFailed("the feedback list is empty", hint=example)
    if len(entries) > max_rows:
        raise HttpError(413, f"{len(entries)} feedback items exceed the limit of {max_rows} per request")
    for n, entry in enumerate(entries):
        where = f"feedback item {n}" if isinstance(body, list) else "feedback"
        if not isinstance(entry, dict):
            raise ValidationFailed(f"{where} must be a JSON object", hint=example)
        missing = sorted({"request_id", "label"} - set(entry))
        if missing:
            raise ValidationFailed(f"{where} lacks {' and '.join(map(repr, missing))}", hint=example)
        extra = sorted(set(entry) - FEEDBACK_KEYS)
        if extra:
            raise ValidationFailed(f"{where}: unknown key(s) {', '.join(repr(k[:64]) for k in extra[:5])}",
                                   hint="the keys are request_id, label and optionally row")
        rid = entry["request_id"]
        if not isinstance(rid, str) or REQUEST_ID.fullmatch(rid) is None:
            raise ValidationFailed(f"{where}: 'request_id' must be the request id string a prediction returned")
    return entries
