"""Parsing YAML the one way serein does: the safe subset, with libyaml's C parser when present.

Contracts, recipes, ``serein.yaml`` and ``SEREIN_*`` / ``--set`` values are all parsed here.
PyYAML's pure-Python ``SafeLoader`` takes about 10 ms for a 25-column contract; ``CSafeLoader``
(PyYAML built against libyaml, as its wheels are) gives the same Python objects and the same
``yaml.YAMLError`` subclasses on bad input in a tenth of that. Without libyaml the pure-Python
loader is used, with the same results.

>>> load_yaml("columns: {age: {type: integer, min: 0}}\\nrules: []")
{'columns': {'age': {'type': 'integer', 'min': 0}}, 'rules': []}
>>> load_yaml("0.25"), load_yaml("yes"), load_yaml("")
(0.25, True, None)
"""

from __future__ import annotations

from typing import Any

import yaml

LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """``text`` parsed as ``yaml.safe_load`` would (None for an empty document); raises
    ``yaml.YAMLError`` on malformed YAML."""
    return yaml.load(text, Loader=LOADER)  # noqa: S506 - a safe loader, C or Python
