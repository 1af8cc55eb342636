"""The ``slowthink export`` command: a checkpoint -> a Hugging Face folder (recipes/export.py).

Must not import torch, transformers or a recipe at module level: the recipe is imported when
the command runs, so ``import slowthink.cli`` stays light.
"""

from __future__ import annotations

from pathlib import Path

import typer

from slowthink.cli.errors import ENVIRONMENT_ERROR, fail


def export_cli(
    checkpoint: Path = typer.Argument(..., help="A checkpoint (RUN/checkpoints/step_NNNNNN) or a run directory (its newest checkpoint)."),
    out: Path = typer.Option(..., "--out", help="New or empty folder for the model, its tokenizer and README.md (the model card)."),
    merge: bool = typer.Option(False, "--merge", help="LoRA checkpoints: merge the adapter into the base weights (a plain transformers model)."),
    push_to_hub: str | None = typer.Option(None, "--push-to-hub", metavar="REPO", help="Upload the folder to this Hugging Face Hub repo (HF_TOKEN)."),
    private: bool = typer.Option(False, "--private", help="With --push-to-hub: create the repo private."),
) -> None:
    """Export a checkpoint as a clean Hugging Face folder with a model card (training config, final metrics)."""
    from slowthink.recipes.export import export_checkpoint
    from slowthink.recipes.export import push_to_hub as upload

    folder = export_checkpoint(checkpoint, out, merge=merge)
    typer.echo(str(folder))
    if push_to_hub:
        from slowthink.recipes.export import upload_failed

        try:
            typer.echo(upload(folder, push_to_hub, private=private))
        except Exception as exc:  # no network, no token, no permission: the folder stays; anything else is a bug
            if not upload_failed(exc):
                raise
            fail(f"upload of {folder} to {push_to_hub} failed ({type(exc).__name__}: {exc}); the exported folder is kept", ENVIRONMENT_ERROR)
