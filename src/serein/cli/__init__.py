"""The ``serein`` command line. Each noun has its own module; heavy libraries load lazily."""

from serein.cli.main import app, main

__all__ = ["app", "main"]
