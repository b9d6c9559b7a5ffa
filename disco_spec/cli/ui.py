"""`disco-spec ui`: MLflow's UI on loopback for the store disco-spec tracks to, opened in "Model training"."""

from __future__ import annotations

from typing import Optional

import typer

from ..tracking.ui import DEFAULT_UI_PORT


def ui(
    port: int = typer.Option(DEFAULT_UI_PORT, "--port", min=1, max=65535, help="Port on 127.0.0.1."),
    tracking_uri: Optional[str] = typer.Option(
        None, "--tracking-uri", metavar="URI",
        help="The store renders were tracked to (default: $MLFLOW_TRACKING_URI, else MLflow's default, sqlite:///mlflow.db here).",
    ),
) -> None:
    """Serve MLflow's UI on 127.0.0.1 for disco-spec's runs and print each experiment's runs URL."""
    from ..tracking.client import resolve_uri
    from ..tracking.ui import is_server_uri, serve_ui

    uri = resolve_uri(tracking_uri)
    if is_server_uri(uri):  # already a server with its UI: nothing to start
        from ..tracking.client import http_env, short_error
        from ..tracking.ui import experiment_urls

        typer.echo(f"{uri} is an MLflow server: open it in a browser")
        try:
            with http_env():
                urls = experiment_urls(uri, uri.rstrip("/"))
        except Exception as exc:  # noqa: BLE001 - unreachable server: say so, exit 1
            typer.echo(f"error: could not list the experiments of {uri}: {short_error(exc)}", err=True)
            raise typer.Exit(1)
        for name, url in urls:
            typer.echo(f"  {name}: {url}")
        return
    raise typer.Exit(serve_ui(uri, port, echo=lambda line: typer.echo(line)))


def register(app: typer.Typer) -> None:
    """Add `ui` to the `disco-spec` app."""
    app.command("ui")(ui)
