"""`callqa analyze` and `callqa demo`: analysing recordings."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import (
    SAMPLE_CALLS,
    Channel,
    ConfigOption,
    DeviceOption,
    Direction,
    LexiconsOption,
    ModelOption,
    ScorecardOption,
    VerboseOption,
    app,
    expected_failures,
    progress_bar,
    stderr,
    stdout,
)


@app.command()
@expected_failures
def analyze(
    audio: Annotated[Path, typer.Argument(help="The recording (mp3, wav, ogg/opus, m4a, flac, ...).")],
    json_out: Annotated[str | None, typer.Option("--json", help="Write the result JSON here ('-' for stdout).")]
    = None,
    manager_channel: Annotated[Channel | None, typer.Option("--manager-channel",
                                                            help="Stereo channel of the manager's leg.")] = None,
    direction: Annotated[Direction | None, typer.Option("--direction", help="in or out, when known.")] = None,
    model: ModelOption = None,
    device: DeviceOption = None,
    lexicons: LexiconsOption = None,
    scorecard: ScorecardOption = None,
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
    from pipeline.scoring.apply import ScoringSetup
    from pipeline.settings import load_settings
    from pipeline.summary import render_summary

    configure_logging(verbose)
    settings = load_settings(config, model=model, device=device.value if device else None,
                             manager_channel=manager_channel.value if manager_channel else None,
                             lexicons=lexicons, scorecard=scorecard)
    # Lexicons and scorecard first: a broken one is refused before any call is touched.
    scoring = ScoringSetup.load(settings.lexicons, settings.scorecard)
    info = probe(audio)  # refuse a missing or broken file before spending seconds on loading the model
    analyzer = CallAnalyzer(settings, scoring=scoring)
    show_progress = not quiet and json_out != "-" and stderr.is_terminal
    with progress_bar() as progress:
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
@expected_failures
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the result JSON files.")] = Path("demo-output"),
    samples: Annotated[Path, typer.Option("--samples", help="Folder of sample calls (*.mp3).")] = SAMPLE_CALLS,
    model: ModelOption = None,
    device: DeviceOption = None,
    verbose: VerboseOption = 0,
) -> None:
    """Analyse the bundled sample calls (every stereo call and one mono mix), show what came out, and build the
    supervisor's report of them."""
    import time
    from datetime import datetime, timedelta

    from pipeline.analyze import CallAnalyzer
    from pipeline.errors import ConfigError
    from pipeline.fileio import write_text_atomic
    from pipeline.logs import configure_logging
    from pipeline.report import build_report, write_report
    from pipeline.report.compute import call_time
    from pipeline.schema import CallMetadata
    from pipeline.scoring.apply import ScoringSetup
    from pipeline.settings import load_settings
    from pipeline.sources.manifest import MANIFEST_NAME, parse_manifest
    from pipeline.summary import render_summary

    configure_logging(verbose)
    stereo = sorted(samples.glob("*.stereo.mp3"))
    mono = sorted(samples.glob("*.mono.mp3"))[:1]
    if not stereo and not mono:
        raise ConfigError(f"no sample calls (*.stereo.mp3, *.mono.mp3) in {samples}")
    # The samples' manifest says what a PBX or Bitrix24 would: the manager's side, direction, manager, deal.
    manifest_path = samples / MANIFEST_NAME
    manifest = (parse_manifest(manifest_path.read_text(encoding="utf-8"), str(manifest_path))
                if manifest_path.is_file() else {})
    settings = load_settings(model=model, device=device.value if device else None)
    started = time.perf_counter()
    scoring = ScoringSetup.load(settings.lexicons, settings.scorecard)
    analyzer = CallAnalyzer(settings, scoring=scoring)
    stdout.print(f"ASR model {analyzer.asr_model.name} on {analyzer.asr_model.device} "
                 f"({analyzer.asr_model.compute_type}); results go to {out}/\n")
    audio_s = 0.0
    results = []
    for path in stereo + mono:
        row = manifest.get(path.name, {})
        result = analyzer.analyze(path, call_id=row.get("call_id") or path.name.removesuffix(".mp3"),
                                  manager_channel=row.get("manager_channel"), direction=row.get("direction"))
        started_at = row.get("started_at")
        result = result.model_copy(update={"metadata": CallMetadata(
            started_at=started_at.isoformat() if started_at else None, manager_id=row.get("manager"),
            manager_name=row.get("manager_name"), deal_id=row.get("deal_id"))})
        results.append(result)
        target = out / f"{result.call_id}.json"
        write_text_atomic(target, result.to_json())
        audio_s += result.duration_s
        stdout.print(render_summary(result, max_turns=6, json_path=str(target)))
        stdout.print()
    elapsed = time.perf_counter() - started
    stdout.print(f"{len(stereo) + len(mono)} calls, {audio_s:.0f} s of audio in {elapsed:.0f} s "
                 f"({audio_s / elapsed:.1f}x realtime, model load included); results in {out}/")
    first = min(call_time(result) for result in results)
    day = datetime.combine(first.date(), datetime.min.time(), tzinfo=first.tzinfo)
    card = scoring.scorecard.definition
    report = build_report(results, {}, since=day, until=day + timedelta(days=1), options=settings.report,
                          criteria=[(c.id, c.title) for c in card.criteria], groups=list(card.groups.items()))
    written = write_report(report, out / "report")
    stdout.print(f"supervisor's report of these calls: {written[0]} (and CSV files beside it)")


