"""Training: recipes, pipelines, splits, evaluation, the quality gate and the training job.

``serein.train`` is also the notebook function ``serein.api.train``: importing this package sets
the attribute ``serein.train`` to the package, so the package itself is made callable and
forwards to that function (``serein.train("recipe.yaml")`` works whichever one Python finds).
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from serein.api import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
