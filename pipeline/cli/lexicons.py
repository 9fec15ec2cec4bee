"""The QA lead's commands: `callqa lexicon check|test|try|schema` and `callqa rescore`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from pipeline.cli.common import (
    ConfigOption,
    LexiconsOption,
    ScorecardOption,
    app,
    expected_failures,
    lexicon_app,
    progress_bar,
    stdout,
)
from pipeline.errors import DefinitionError
from pipeline.lexicon import DEFAULT_LEXICONS
from pipeline.support.russian import ROLE_RU, VERDICT_RU, call_time_tenths

FolderArgument = Annotated[Path, typer.Argument(help="Lexicon folder.", file_okay=False)]


@lexicon_app.command("check")
def check(
    folder: FolderArgument = DEFAULT_LEXICONS,
    scorecard: ScorecardOption = None,
) -> None:
    """Validate every lexicon file (and a scorecard against them); list every problem with file and line."""
    from pipeline.lexicon import load_lexicons
    from pipeline.scoring import load_scorecard

    problems = []
    lexicons = None
    try:
        lexicons = load_lexicons(folder)
    except DefinitionError as error:
        problems += error.problems or [error]  # one that lists no problem still fails the check, with its message
    if scorecard is not None:
        try:
            loaded = load_scorecard(scorecard)
            if lexicons is not None:
                loaded.check_against(lexicons)
        except DefinitionError as error:
            problems += error.problems
    if problems or lexicons is None:
        for problem in problems:
            print(f"callqa: error: {problem}", file=sys.stderr)
        raise typer.Exit(3)
    terms = sum(len(lexicon.terms) for lexicon in lexicons.lexicons.values())
    stdout.print(f"ok: {len(lexicons.lexicons)} lexicons, {terms} terms in {folder} (version {lexicons.version})"
                 + (f"; scorecard {scorecard} fits them" if scorecard else ""))


@lexicon_app.command("test")
@expected_failures
def test(
    folder: FolderArgument = DEFAULT_LEXICONS,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List the examples that pass too.")] = False,
) -> None:
    """Run every term's examples (must match) and counterexamples (must not match)."""
    from pipeline.lexicon import load_lexicons, run_examples

    outcomes = run_examples(load_lexicons(folder))
    failed = [outcome for outcome in outcomes if not outcome.passed]
    # A fuzzy match is shown even when it passes: the QA lead sees what the tolerance adds.
    for outcome in outcomes if verbose else [o for o in outcomes if not o.passed or o.fuzzy]:
        stdout.print(Text(str(outcome), style="red" if not outcome.passed else ""))
    stdout.print(f"{len(outcomes) - len(failed)} of {len(outcomes)} examples behave as written"
                 + (f"; {len(failed)} do not" if failed else ""))
    if failed:
        raise typer.Exit(1)


@lexicon_app.command("try")
@expected_failures
def try_(
    folder: FolderArgument,
    text_or_result: Annotated[str, typer.Argument(help="A phrase in quotes, or a stored result JSON file.")],
) -> None:
    """Show what the lexicons find in a phrase, or in a stored call (roles and time windows applied)."""
    from pipeline.lexicon import load_lexicons
    from pipeline.lexicon.edit import explain_phrase
    from pipeline.lexicon.matcher import fuzzy_note
    from pipeline.scoring.diff import read_result

    lexicons = load_lexicons(folder)
    path = Path(text_or_result)
    if path.suffix == ".json" and path.is_file():
        result = read_result(path)
        hits = lexicons.matcher.find_hits(result.words, result.turns, result.duration_s)
        for hit in hits:
            how = "" if hit.match == "lemma" else f"; {fuzzy_note(hit.similarity, hit.missing)}"
            stdout.print(f"{call_time_tenths(hit.start)}  {ROLE_RU[hit.role]:8}  {hit.lexicon}/{hit.term}  «{hit.text}»"
                         f"  (фраза: {hit.phrase}{how})")
        stdout.print(f"{len(hits)} hits in {path}")
        return
    explanation = explain_phrase(lexicons, text_or_result)
    for found in explanation.hits:
        how = f"; {found.note}" if found.note else ""
        stdout.print(f"{found.lexicon}/{found.term}  «{' '.join(found.words)}»  (фраза: {found.phrase}; "
                     f"говорит: {found.speaker}{how})")
    stdout.print(f"{len(explanation.hits)} hits")


@lexicon_app.command("schema")
def schema(
    out: Annotated[Path, typer.Option("--out", help="Folder for the JSON Schema files.", file_okay=False)]
    = DEFAULT_LEXICONS / "schema",
) -> None:
    """Write the JSON Schemas of lexicon and scorecard files (for editors' completion and checks)."""
    from pipeline.scoring.json_schemas import schemas
    from pipeline.support.fileio import write_text_atomic

    for name, document in schemas().items():
        write_text_atomic(out / name, json.dumps(document, ensure_ascii=False, indent=2) + "\n")
        stdout.print(f"wrote {out / name}")


@app.command()
@expected_failures
def rescore(
    results: Annotated[list[Path], typer.Argument(help="Result JSON files or folders of them.")],
    lexicons: LexiconsOption = None,
    scorecard: ScorecardOption = None,
    diff: Annotated[bool, typer.Option("--diff", help="Show what would change per call; write nothing.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Write the re-scored results here instead of in "
                                             "place.", file_okay=False)] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Processes to re-score in (default: one "
                                                "per CPU core, one per 200 results at most).")] = None,
    config: ConfigOption = None,
) -> None:
    """Re-score stored results with (new) lexicons and a scorecard, without audio or ASR (a diarized mono call's
    roles are found again from the lexicons' role cues); people's reviews of the calls' criteria are kept."""
    from pipeline.scoring.diff import expand_result_paths
    from pipeline.scoring.files import SetupFiles, rescore_files, worker_count
    from pipeline.support.collector import settle_for_batch

    files = SetupFiles(lexicons, scorecard, config)
    setup = files.load()  # checked here, before any result is read or any worker started
    assert setup.lexicons is not None  # load always reads a lexicon folder (the shipped one by default)
    # Everything loaded so far (dictionaries, lexicons) lives as long as the process: keep it out of the
    # garbage collector's scans, which otherwise cost a fifth of re-scoring time.
    settle_for_batch()
    paths = expand_result_paths(results)
    for folder in (path for path in results if path.is_dir() and not any(path.glob("*.json"))):
        print(f"callqa: warning: no result files (*.json) at the top of {folder} (sub-folders are not "
              "searched: a store's results are calls/*/result.json)", file=sys.stderr)
    failed = changed = 0
    with progress_bar() as progress:
        task = progress.add_task("re-scoring", total=len(paths))
        for outcome in rescore_files(paths, files, setup, write=not diff, out=out,
                                     workers=worker_count(len(paths), workers),
                                     advance=lambda done: progress.advance(task, done)):
            if outcome.difference is None:
                print(f"callqa: error: {outcome.error}", file=sys.stderr)
                failed += 1
                continue
            changed += outcome.difference.changed
            if diff:
                _print_diff(outcome.path, outcome.difference)
    action = "compared" if diff else f"re-scored into {out}" if out else "re-scored in place"
    stdout.print(f"{len(paths) - failed} results {action}: {changed} changed, {failed} failed "
                 f"(lexicons {setup.lexicons.version}, scorecard "
                 f"{setup.scorecard.version if setup.scorecard else '-'})")
    if failed:
        raise typer.Exit(1)


def _print_diff(path: Path, difference) -> None:
    if not difference.changed:
        stdout.print(Text(f"{path.name}: no change", style="dim"))
        return

    def total(value, grade):
        return "—" if value is None else f"{value:g} (оценка {grade})"

    stdout.print(Text(f"{path.name}: score {total(difference.total_before, difference.grade_before)} -> "
                      f"{total(difference.total_after, difference.grade_after)}", style="bold"))
    for sign, hits, style in (("+", difference.gained, "green"), ("-", difference.lost, "red")):
        for hit in hits:
            stdout.print(Text(f"  {sign} {call_time_tenths(hit.start)} {ROLE_RU[hit.role]} {hit.lexicon}/{hit.term} "
                              f"«{hit.text}»", style=style))
    for criterion, was, now in difference.flipped:
        stdout.print(f"  критерий {criterion}: {VERDICT_RU.get(was or '', '—')} -> {VERDICT_RU.get(now or '', '—')}")
