"""`disco-spec cache ls | prune | verify`: the render cache under $DISCO_SPEC_CACHE/renders (run.cache)."""

from __future__ import annotations

import time
from typing import Optional

import typer

NO_CACHE_HELP = ("Render every item, even one already rendered from the same recipe (by default a verified copy "
                 "from the render cache, $DISCO_SPEC_CACHE/renders, or the MLflow store is used).")

cache_app = typer.Typer(help="The render cache: outputs kept by recipe id, served to renders of the same recipe.",
                        no_args_is_help=True)


@cache_app.command("ls")
def ls() -> None:
    """List the cache's entries, most recently used first: recipe id, item or frames, size, batch, manifest id."""
    from ..run.cache import list_entries, renders_root

    entries = list_entries()
    total = sum(e.bytes for e in entries)
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used))
        typer.echo(f"{e.recipe_id[:16]}  {e.key:<24} {e.bytes:>12,d} B  {when}  {e.batch_name or '?'}  "
                   f"manifest {str(e.manifest_id)[:16]}")
    typer.echo(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, {total:,d} bytes in {renders_root()}")


@cache_app.command("prune")
def prune(
    max_bytes: Optional[int] = typer.Option(None, "--max-bytes", min=0, help="Keep at most this many bytes, the "
                                            "most recently used (default: $DISCO_SPEC_RENDER_CACHE_MAX_BYTES, 4 GiB)."),
    older_than_days: Optional[float] = typer.Option(None, "--older-than-days", min=0,
                                                    help="Also remove entries not used for this many days."),
    all_entries: bool = typer.Option(False, "--all", help="Remove every entry."),
) -> None:
    """Remove entries, least recently used first."""
    from ..run.cache import max_bytes as default_max, prune as do_prune

    keep = 0 if all_entries else (max_bytes if max_bytes is not None else default_max())
    removed = do_prune(None, keep, older_than_s=None if older_than_days is None else older_than_days * 86400)
    typer.echo(f"removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'}, "
               f"{sum(e.bytes for e in removed):,d} bytes")


@cache_app.command("verify")
def verify(
    sample: Optional[int] = typer.Option(None, "--sample", min=1, help="Check N entries chosen at random (seeded by "
                                         "--seed); default: every entry."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample's choice."),
) -> None:
    """Render cached entries again (without the cache) and compare pixels. Exit 0 all the same, 1 any differs or
    cannot be rendered here."""
    from ..repro.cache_check import summary, verify_cache

    checks = verify_cache(sample, seed=seed)
    for c in checks:
        typer.echo(c.text())
    counts = summary(checks)
    typer.echo(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "the render cache is empty")
    raise typer.Exit(0 if set(counts) <= {"same"} else 1)


def register(app: typer.Typer) -> None:
    """Add `cache` (ls, prune, verify) to the `disco-spec` app."""
    app.add_typer(cache_app, name="cache")
