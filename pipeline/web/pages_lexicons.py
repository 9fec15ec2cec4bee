"""Lexicons for QA leads: try a phrase, edit a file, preview the edit on stored calls, save it (validated, the
previous version kept)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request

from pipeline.errors import CallqaError
from pipeline.web.app import Workbench, bench_of, check_csrf, require
from pipeline.web.pages_calls import VERDICT_TITLES

router = APIRouter()
logger = logging.getLogger(__name__)


def _folder(bench: Workbench) -> Path:
    from pipeline.lexicon import DEFAULT_LEXICONS

    return Path(bench.settings.lexicons or DEFAULT_LEXICONS)


def _file(bench: Workbench, filename: str) -> Path:
    from pipeline.lexicon.edit import list_lexicon_files

    names = {path.name: path for path in list_lexicon_files(_folder(bench))}
    if filename not in names:
        raise HTTPException(404, f"нет такого файла лексикона: {filename!r}")
    return names[filename]


@router.get("/lexicons")
def lexicons_page(request: Request, phrase: str = ""):
    from pipeline.lexicon.edit import explain_phrase, list_lexicon_files

    require(request, "lexicons")
    bench = bench_of(request)
    explanation = explain_phrase(bench.setup.lexicons, phrase[:500]) if phrase.strip() and bench.setup.lexicons \
        else None
    return bench.render(request, "lexicons.html.j2", files=list_lexicon_files(_folder(bench)), phrase=phrase,
                        explanation=explanation, lexicons=bench.setup.lexicons)


@router.get("/lexicons/{filename}")
def lexicon_edit_page(request: Request, filename: str):
    from pipeline.lexicon.edit import read_lexicon

    require(request, "lexicons")
    bench = bench_of(request)
    try:
        text = read_lexicon(_folder(bench), _file(bench, filename).name)
    except CallqaError as error:
        raise HTTPException(404, f"файл лексикона не читается: {error}") from None
    return _edit_page(request, bench, filename, text)


def _recent_transcripts(bench: Workbench):
    from pipeline.reviews import read_reviews
    from pipeline.stores import transcript_key
    from pipeline.transcript import read_transcript

    for call_id in bench.index.call_ids(limit=bench.web.preview_max_calls):
        data = bench.store.read(transcript_key(call_id))
        if data is None:
            continue
        try:
            yield call_id, read_transcript(data), read_reviews(bench.store, call_id)
        except (ValueError, CallqaError) as error:
            logger.warning("call %s left out of the preview: %s", call_id, error)


@router.post("/lexicons/{filename}/preview", dependencies=[Depends(check_csrf)])
def lexicon_preview(request: Request, filename: str, text: Annotated[str, Form(max_length=1_000_000)]):
    from pipeline.lexicon.edit import preview_lexicon_edit

    require(request, "lexicons")
    bench = bench_of(request)
    settings = bench.settings
    _file(bench, filename)
    preview = preview_lexicon_edit(_folder(bench), filename, text, _recent_transcripts(bench),
                                   scorecard=settings.scorecard, settings=settings)
    return _edit_page(request, bench, filename, text, status_code=422 if preview.errors else 200,
                      errors=preview.errors, preview=preview)


@router.post("/lexicons/{filename}/save", dependencies=[Depends(check_csrf)])
def lexicon_save(request: Request, filename: str, text: Annotated[str, Form(max_length=1_000_000)]):
    from pipeline.errors import DefinitionError
    from pipeline.lexicon.edit import LexiconEditError, save_lexicon

    user = require(request, "lexicons")
    bench = bench_of(request)
    settings = bench.settings
    _file(bench, filename)
    try:
        saved = save_lexicon(_folder(bench), filename, text, author=user.login,
                             now=datetime.fromtimestamp(bench.clock(), UTC), scorecard=settings.scorecard,
                             settings=settings)
    except LexiconEditError as error:
        return _edit_page(request, bench, filename, text, status_code=422, errors=error.problems)
    logger.info("%s saved lexicon %s", user.login, filename)
    try:
        bench.reload_setup()
    except DefinitionError as error:  # another file of the folder is broken: the page says so, scoring goes on
        logger.warning("lexicons not reloaded after saving %s: %s", filename, error)
        return _edit_page(request, bench, filename, text, saved=saved,
                          errors=list(saved.other_errors) or [str(error)])
    return _edit_page(request, bench, filename, text, saved=saved)


def _edit_page(request: Request, bench: Workbench, filename: str, text: str, *, status_code: int = 200,
               errors=None, preview=None, saved=None):
    from pipeline.lexicon.edit import lexicon_history

    return bench.render(request, "lexicon_edit.html.j2", status_code=status_code, filename=filename, text=text,
                        history=lexicon_history(_folder(bench), filename), preview=preview,
                        errors=[_problem(p) for p in errors or []], saved=saved, verdict_titles=VERDICT_TITLES)


def _problem(problem) -> str:
    """An EditProblem as file:line: message (a plain message as it is)."""
    if isinstance(problem, str):
        return problem
    return f"{problem.file}:{problem.line}: {problem.message}" if problem.line else f"{problem.file}: {problem.message}"
