"""Contracts: the schema and checks of a dataset's features, stored as reviewed YAML.

One contract validates ingest batches (bad rows quarantined), training data, every serving request
(compiled to a fast per-row validator) and production windows in monitoring.

>>> c = Contract.from_dict({"columns": {"age": {"type": "integer", "min": 18},
...                                     "city": {"type": "string", "allowed": ["Lyon", "Oslo"]}}})
>>> c.columns["age"].nullable, c.columns["city"].unseen
(True, 'flag')
>>> Contract.from_yaml(c.to_yaml()) == c
True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from serein.errors import NotFoundError, UsageError
from serein.yaml_loader import load_yaml

COLUMN_TYPES = ("integer", "float", "string", "boolean", "datetime")
NUMERIC_TYPES = ("integer", "float")
RULE_OPS = ("<", "<=", ">", ">=", "==", "!=")
UNSEEN_POLICIES = ("reject", "flag")
UNKNOWN_FIELD_POLICIES = ("reject", "ignore")


def _check_keys(where: str, given: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise UsageError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}",
            hint=f"allowed keys are {', '.join(sorted(allowed))}",
        )


@dataclass
class ColumnSpec:
    """What one column must satisfy.

    ``completeness`` is the lowest acceptable share of non-null values in a batch (suggested
    from the Wilson lower bound of the reference's completeness); ``nullable: false`` forbids any
    null. ``allowed`` lists the categories of a text column; ``unseen`` says what serving does with
    a category outside it (``reject`` the row, or ``flag`` it for monitoring and predict anyway).
    """

    type: str
    nullable: bool = True
    completeness: float | None = None
    min: float | None = None
    max: float | None = None
    non_negative: bool = False
    allowed: list[Any] | None = None
    unseen: str = "flag"
    regex: str | None = None

    def __post_init__(self) -> None:
        if self.type not in COLUMN_TYPES:
            raise UsageError(f"unknown column type {self.type!r}", hint=f"use one of {', '.join(COLUMN_TYPES)}")
        if self.unseen not in UNSEEN_POLICIES:
            raise UsageError(f"unseen must be one of {UNSEEN_POLICIES}, got {self.unseen!r}")
        if self.completeness is not None and not 0.0 <= float(self.completeness) <= 1.0:
            raise UsageError(f"completeness must lie in [0, 1], got {self.completeness!r}")

    @property
    def numeric(self) -> bool:
        return self.type in NUMERIC_TYPES

    @property
    def categorical(self) -> bool:
        return self.type in ("string", "boolean")


@dataclass
class Rule:
    """A cross-column rule ``left op right``; ``right`` is a column name or a number.
    Rows where either side is null pass (nullability is the columns' business)."""

    name: str
    left: str
    op: str
    right: str | float

    def __post_init__(self) -> None:
        if self.op not in RULE_OPS:
            raise UsageError(f"rule {self.name!r}: unknown operator {self.op!r}", hint=f"use one of {' '.join(RULE_OPS)}")


@dataclass
class Contract:
    columns: dict[str, ColumnSpec]
    rules: list[Rule] = field(default_factory=list)
    dataset: str | None = None
    unknown_fields: str = "reject"

    # -- (de)serialisation -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, where: str = "contract") -> Contract:
        if not isinstance(data, dict):
            raise UsageError(f"{where}: expected a mapping with a 'columns' key")
        _check_keys(where, data, {"columns", "rules", "dataset", "unknown_fields"})
        raw_cols = data.get("columns")
        if not isinstance(raw_cols, dict) or not raw_cols:
            raise UsageError(f"{where}: 'columns' must be a non-empty mapping of column name to spec")
        col_keys = {f.name for f in fields(ColumnSpec)}
        columns: dict[str, ColumnSpec] = {}
        for name, spec in raw_cols.items():
            if not isinstance(spec, dict) or "type" not in spec:
                raise UsageError(f"{where}: column {name!r} needs a mapping with at least 'type'")
            _check_keys(f"{where}: column {name!r}", spec, col_keys)
            try:
                columns[str(name)] = ColumnSpec(**spec)
            except UsageError as exc:
                raise UsageError(f"{where}: column {name!r}: {exc.message}", exc.hint) from None
        rules = []
        for i, rule in enumerate(data.get("rules") or []):
            if not isinstance(rule, dict):
                raise UsageError(f"{where}: rule #{i + 1} must be a mapping")
            _check_keys(f"{where}: rule #{i + 1}", rule, {"name", "left", "op", "right"})
            missing = {"left", "op", "right"} - set(rule)
            if missing:
                raise UsageError(f"{where}: rule #{i + 1} lacks {', '.join(sorted(missing))}")
            rules.append(Rule(name=str(rule.get("name") or f"rule_{i + 1}"), left=rule["left"], op=rule["op"], right=rule["right"]))
            for side in (rule["left"], rule["right"]):
                if isinstance(side, str) and side not in columns:
                    raise UsageError(f"{where}: rule {rules[-1].name!r} names unknown column {side!r}")
        unknown_fields = data.get("unknown_fields", "reject")
        if unknown_fields not in UNKNOWN_FIELD_POLICIES:
            raise UsageError(f"{where}: unknown_fields must be one of {UNKNOWN_FIELD_POLICIES}")
        return cls(columns=columns, rules=rules, dataset=data.get("dataset"), unknown_fields=unknown_fields)

    def to_dict(self) -> dict[str, Any]:
        cols = {}
        for name, spec in self.columns.items():
            d = asdict(spec)
            defaults = {f.name: f.default for f in fields(ColumnSpec) if f.name != "type"}
            cols[name] = {k: v for k, v in d.items() if k == "type" or v != defaults[k]}
        out: dict[str, Any] = {}
        if self.dataset:
            out["dataset"] = self.dataset
        out["unknown_fields"] = self.unknown_fields
        out["columns"] = cols
        if self.rules:
            out["rules"] = [asdict(r) for r in self.rules]
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_yaml(cls, text: str, where: str = "contract") -> Contract:
        try:
            data = load_yaml(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"{where} is not valid YAML: {exc}") from None
        return cls.from_dict(data, where)

    @classmethod
    def load(cls, path: str | Path) -> Contract:
        p = Path(path)
        if not p.is_file():
            raise NotFoundError(f"contract file {p} not found", hint="suggest one with `serein data profile NAME --write PATH`")
        return cls.from_yaml(p.read_text(), where=str(p))

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.to_yaml())
        return p

    # -- derived -----------------------------------------------------------------------------
    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON form: a stable identity for lineage."""
        canon = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canon.encode()).hexdigest()

    def row_schema(self) -> dict[str, Any]:
        """The JSON Schema of one row that serving accepts (``serve.validation``): every column
        required, its JSON type (null too where ``nullable``), the ``allowed`` categories where
        an unseen one is rejected, the ``regex``; no other field where ``unknown_fields`` is
        ``reject``. What serving only flags (``min``, ``max``, ``non_negative``, an unseen
        category under ``flag``, the rules) does not narrow it. The OpenAPI document of a server
        describes each served model's rows so, for clients generated from it and for schemathesis.

        >>> Contract.from_dict({"columns": {"age": {"type": "integer", "nullable": False},
        ...     "city": {"type": "string", "allowed": ["Oslo"], "unseen": "reject"}}}).row_schema()["properties"]
        {'age': {'type': 'integer'}, 'city': {'type': ['string', 'null'], 'enum': ['Oslo', None]}}
        """
        json_types = {"integer": "integer", "float": "number", "string": "string", "boolean": "boolean",
                      "datetime": "string"}
        properties: dict[str, Any] = {}
        for name, spec in self.columns.items():
            json_type = json_types[spec.type]
            prop: dict[str, Any] = {"type": [json_type, "null"] if spec.nullable else json_type}
            if spec.type == "datetime":
                prop["format"] = "date-time"
            if spec.allowed is not None and spec.unseen == "reject":
                prop["enum"] = [*spec.allowed, *([None] if spec.nullable else [])]
            if spec.regex is not None:
                prop["pattern"] = spec.regex
            properties[name] = prop
        return {"type": "object", "properties": properties, "required": list(self.columns),
                "additionalProperties": self.unknown_fields != "reject"}

    def select(self, names: list[str]) -> Contract:
        """The contract restricted to ``names`` (rules that mention other columns are dropped)."""
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise UsageError(f"column(s) {', '.join(map(repr, missing))} are not in the contract")
        keep = set(names)
        rules = [r for r in self.rules if r.left in keep and (not isinstance(r.right, str) or r.right in keep)]
        return Contract({n: self.columns[n] for n in names}, rules, self.dataset, self.unknown_fields)
