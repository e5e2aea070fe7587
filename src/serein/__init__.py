"""serein: tabular ML from notebook to a monitored, self-correcting production service.

``serein.Workspace``, ``serein.deploy`` and ``serein.train`` are loaded on first use, so that
``import serein`` (and the CLI's start) stays free of heavy libraries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serein.api import deploy, train
    from serein.workspace import Workspace

__all__ = ["Workspace", "deploy", "train"]
__version__ = "0.1.0"

_LAZY = {"Workspace": "serein.workspace", "deploy": "serein.api", "train": "serein.api"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'serein' has no attribute {name!r}")
