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
    manager: Annotated[str | None, typer.Option("--manager", help="The manager's id: their voiceprint helps "
                                                "tell the roles apart in a mono call.")] = None,
    voiceprints: Annotated[str | None, typer.Option("--voiceprints", help="Store holding the voiceprints "
                                                    "(default: run.store).")] = None,
    config: ConfigOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
    verbose: VerboseOption = 0,
) -> None:
    """Analyse one recording and write one result (the contract in docs/result-json.md)."""
    from pipeline.analyze import CallAnalyzer
    from pipeline.audio import probe
    from pipeline.cli.summary import render_summary
    from pipeline.derive import DeriveSetup
    from pipeline.settings import load_settings
    from pipeline.support.fileio import write_text_atomic
    from pipeline.support.logs import configure_logging

    configure_logging(verbose)
    settings = load_settings(config, model=model, device=device.value if device else None,
                             manager_channel=manager_channel.value if manager_channel else None,
                             lexicons=lexicons, scorecard=scorecard)
    # Lexicons and scorecard first: a broken one is refused before any call is touched.
    setup = DeriveSetup.load(settings.lexicons, settings.scorecard, settings=settings)
    info = probe(audio)  # refuse a missing or broken file before spending seconds on loading the model
    voiceprint = None
    if manager:
        from pipeline.speakers.voiceprints import VoiceprintStore
        from pipeline.stores import open_store

        store = VoiceprintStore(open_store(voiceprints or settings.run.store, settings.s3), settings.voiceprints)
        voiceprint = store.get(manager)
        if voiceprint is None:
            stderr.print(f"callqa: no voiceprint of {manager} in {store.store.describe()}: roles of a mono call "
                         "rest on what is said")
    analyzer = CallAnalyzer(settings, setup=setup)
    show_progress = not quiet and json_out != "-" and stderr.is_terminal
    with progress_bar() as progress:
        task = progress.add_task(audio.name, total=None, visible=show_progress)

        def hook(step, artifact=None, *, completed=None, total=None):
            progress.update(task, completed=completed, total=total)

        result = analyzer.analyze(info, call_id=call_id, direction=direction.value if direction else None,
                                  voiceprint=voiceprint, hook=hook)
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
    out: Annotated[Path, typer.Option("--out", help="Folder for the results, the store and the report.")]
    = Path("demo-output"),
    samples: Annotated[Path, typer.Option("--samples", help="Folder of sample calls with manifest.csv.")]
    = SAMPLE_CALLS,
    model: ModelOption = None,
    device: DeviceOption = None,
    verbose: VerboseOption = 0,
) -> None:
    """The whole loop on the bundled sample calls: a local Bitrix24 portal holding yesterday's calls, the nightly
    run analysing and scoring them and commenting in their deals, what a manager reads, and the supervisor's
    report."""
    from datetime import date, datetime, timedelta

    from pydantic import SecretStr
    from rich.rule import Rule
    from rich.text import Text

    from pipeline.cli.run import run_and_report
    from pipeline.cli.summary import render_summary
    from pipeline.errors import ConfigError
    from pipeline.report import load_results, write_report
    from pipeline.report.assemble import assemble_report
    from pipeline.sandbox import MSK, Portal, serve
    from pipeline.settings import load_settings
    from pipeline.sources.base import TimeWindow
    from pipeline.support.fileio import write_text_atomic
    from pipeline.support.logs import configure_logging

    configure_logging(verbose)
    if not (samples / "manifest.csv").is_file():
        raise ConfigError(f"no sample calls with a manifest.csv in {samples}")
    _fresh_demo_store(out / "store")
    yesterday = date.today() - timedelta(days=1)
    portal = Portal.from_folder(samples, day=yesterday)
    start = datetime.combine(yesterday, datetime.min.time(), tzinfo=MSK)
    with serve(portal) as sandbox:
        stdout.print(Rule("1. A local Bitrix24 portal"))
        stdout.print(f"{sandbox.base_url}: {sum(r['CALL_FAILED_CODE'] == '200' for r in portal.calls)} answered and "
                     f"{sum(r['CALL_FAILED_CODE'] != '200' for r in portal.calls)} missed calls of "
                     f"{yesterday:%d.%m.%Y}, {len(portal.deals)} deals, {len(portal.users)} managers\n")
        settings = load_settings(model=model, device=device.value if device else None)
        settings = settings.model_copy(update={
            "bitrix24": settings.bitrix24.model_copy(update={"webhook": SecretStr(sandbox.webhook_url)}),
            "run": settings.run.model_copy(update={"source": "bitrix24", "store": str(out / "store")})})
        stdout.print(Rule("2. The nightly run: callqa run --source bitrix24 --date yesterday"))
        report = run_and_report(settings, window=TimeWindow(since=start, until=start + timedelta(days=1)),
                                label="yesterday")
    summary, store = report.summary, report.store
    results, _ = load_results(store)
    results.sort(key=lambda r: r.metadata.started_at or "")
    stdout.print(Rule("3. What was heard"))
    for result in results:
        target = write_text_atomic(out / "results" / f"{result.call_id}.json", result.to_json())
        stdout.print(render_summary(result, max_turns=4, json_path=str(target)))
        stdout.print()
    stdout.print(Rule("4. What a manager reads in the deal"))
    shown = 0
    for result in results:
        deal = (result.metadata.crm_target or "").removeprefix("deal:")
        posted = [c for c in portal.comments.values() if c["ENTITY_TYPE"] == "deal" and c["ENTITY_ID"] == deal]
        if posted and shown < 2:
            stdout.print(Text(f"Сделка {deal}, менеджер {result.metadata.manager_name}:", style="bold"))
            stdout.print(Text(posted[0]["COMMENT"]))
            stdout.print()
            shown += 1
    # The deals are those the run read from the portal (its CRM snapshot in the store).
    report = assemble_report(settings, store, since=start, until=start + timedelta(days=1)).report
    written = write_report(report, out / "report")
    stdout.print(Rule("5. The supervisor's report"))
    stdout.print(f"{written[0]} (and CSV files beside it); {len(portal.comments)} comments in the portal; "
                 f"{summary.audio_s:.0f} s of audio in {summary.wall_s:.0f} s; results in {out / 'results'}/")
    for view in report.funnels:
        stages = " → ".join(f"{stage.title} {stage.deals}" for stage in view.stages if stage.semantic != "lost")
        lost = sum(stage.deals for stage in view.stages if stage.semantic == "lost")
        stdout.print(f"Воронка «{view.name}»: {stages}; проиграно {lost}")
    _demo_mono_call(samples, store, settings)
    stdout.print(Rule("7. The QA lead's workbench: listen, check, correct"))
    users = out / "users.yaml"
    stdout.print("Add yourself as a QA lead (it asks for a password), then serve the demo's store:\n"
                 f"  .venv/bin/callqa user add qa --role qa --name \"QA lead\" --users {users}\n"
                 f"  .venv/bin/callqa serve --store {out / 'store'} --users {users}\n"
                 "and open http://127.0.0.1:8080/ (docs/workbench.md).")


def _fresh_demo_store(store: Path) -> None:
    """Each demo serves a new portal, so an earlier demo's store must go: its ledgers name comments and fields
    posted to a portal that is gone (updating them fails with NOT_FOUND, and nothing would be posted to the new
    one). Only a callqa store is removed (it has `runs/`); any other folder there is refused."""
    import shutil

    from rich.text import Text

    from pipeline.errors import ConfigError

    if not store.exists():
        return
    if not (store / "runs").is_dir():
        raise ConfigError(f"{store} exists and is not a callqa store: choose another --out for the demo")
    shutil.rmtree(store)
    stdout.print(Text(f"(a new portal: {store}, an earlier demo's store, removed)", style="dim"))


def _demo_mono_call(samples: Path, store, settings) -> None:
    """Step 6 of the demo: a mono mix of a sample call, diarized, its manager found with the voiceprint the
    nightly run just learnt from the manager's stereo calls."""
    import csv

    from rich.rule import Rule

    from pipeline.analyze import CallAnalyzer
    from pipeline.cli.summary import render_summary
    from pipeline.derive import DeriveSetup
    from pipeline.speakers.voiceprints import VoiceprintStore

    with (samples / "manifest.csv").open(encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle)
                if row["file"].endswith(".mono.mp3") and (samples / row["file"]).is_file()]
    if not rows:
        return
    row = rows[0]
    voiceprint = VoiceprintStore(store, settings.voiceprints).get(row["manager"]) if row.get("manager") else None
    stdout.print(Rule("6. A mono recording: who is the manager"))
    analyzer = CallAnalyzer(settings, setup=DeriveSetup.load(settings.lexicons, settings.scorecard,
                                                                settings=settings))
    result = analyzer.analyze(samples / row["file"], direction=row.get("direction") or None, voiceprint=voiceprint)
    stdout.print(render_summary(result, max_turns=4))
    for item in result.role_detection.evidence if result.role_detection else []:
        stdout.print(f"  evidence ({item.kind}): {item.detail}")
