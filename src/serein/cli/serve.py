"""``serein serve``: every registered model's champion over HTTP."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from serein.cli.common import WorkspaceOpt, open_workspace


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: Annotated[str | None, typer.Option(help="Address to listen on (default: serve.host, 127.0.0.1).",
                                                 show_default=False)] = None,
        port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port (default: serve.port, 8000).",
                                                 show_default=False)] = None,
        workers: Annotated[int | None, typer.Option(min=1, help="Worker processes (default: serve.workers, 1).",
                                                    show_default=False)] = None,
        model: Annotated[str | None, typer.Option(help="The model MLflow's POST /invocations serves (default: "
                                                       "serve.invocations_model, else the only served model).",
                                                  show_default=False)] = None,
        workspace: WorkspaceOpt = None,
    ) -> None:
        """Serve every registered model's champion (POST /v1/models/NAME/predict, the Open Inference
        Protocol under /v2 and MLflow's /invocations); follows the champion alias, logs every
        prediction and takes feedback by request id."""
        from serein.errors import NotFoundError
        from serein.serve.protocol_mlflow import SETTING
        from serein.serve.server import run, served_models

        if model is not None:  # through the environment, so every worker process sees it (JSON is YAML)
            os.environ[f"SEREIN_SERVE__{SETTING.upper()}"] = json.dumps(model)
        ws = open_workspace(workspace)
        if model is not None and model not in (names := served_models(ws)):
            raise NotFoundError(f"--model {model!r} has no champion to serve (served: {', '.join(names)})",
                                hint="pick one of them, or promote a version with `serein models promote`")
        run(ws, host=host, port=port, workers=workers)
