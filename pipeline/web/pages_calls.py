"""The calls: the list (filters, search, pages), a call's page, its audio, and reviews of its criteria."""

from __future__ import annotations

import bisect
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from pipeline.errors import CallqaError
from pipeline.schema import CallResult, Hit, Turn, Word
from pipeline.stores import result_key
from pipeline.web.app import Workbench, bench_of, check_csrf, checked_call_id, current_user, require
from pipeline.web.index import SORTS, CallFilter
from pipeline.web.users import User

router = APIRouter()
logger = logging.getLogger(__name__)

VERDICT_TITLES = {"met": "выполнен", "not_met": "не выполнен", "uncertain": "не удалось проверить",
                  "not_applicable": "не применим"}
ROLE_TITLES = {"manager": "Менеджер", "client": "Клиент", "unknown": "Говорящий"}


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        raise HTTPException(400, f"неверная дата: {value!r} (нужно ГГГГ-ММ-ДД)") from None


def _float(value: str | None) -> float | None:
    try:
        return float(value.replace(",", ".")) if value else None
    except ValueError:
        raise HTTPException(400, f"неверное число: {value!r}") from None


@router.get("/calls")
def calls_page(request: Request, q: str = "", since: str | None = None, until: str | None = None,
               manager: str | None = None, score_min: str | None = None, score_max: str | None = None,
               failed: str | None = None, hit: str | None = None, reviewed: str | None = None,
               sort: str = "started", order: str = "desc", page: int = 1):
    user = require(request, "calls")
    bench = bench_of(request)
    bench.refresh_index()
    if sort not in SORTS:
        raise HTTPException(400, f"неизвестная сортировка {sort!r}")
    own = None if user.sees_all_calls() else (user.bitrix24_user_id or "\0")
    wanted = CallFilter(since=_date(since), until=_date(until), manager=manager or None,
                        score_min=_float(score_min), score_max=_float(score_max), failed=failed or None,
                        hit=hit or None, query=q[:200], reviewed={"yes": True, "no": False}.get(reviewed or ""),
                        sort=sort, descending=order != "asc", page=page, page_size=bench.web.page_size,
                        manager_only=own)
    found = bench.index.search(wanted)
    params = {key: value for key, value in request.query_params.items() if key != "page"}
    return bench.render(request, "calls.html.j2", found=found, params=params, q=q,
                        managers=bench.index.managers(only=own), criteria=_criteria(bench), terms=_terms(bench))


def _criteria(bench: Workbench) -> list[tuple[str, str]]:
    """(id, title) of the scorecard's criteria, for the filter's menu."""
    scorecard = bench.setup.scorecard
    return [(c.id, c.title) for c in scorecard.definition.criteria] if scorecard else []


def _terms(bench: Workbench) -> list[tuple[str, str]]:
    """(lexicon, term) of every lexicon term, for the filter's menu."""
    lexicons = bench.setup.lexicons
    return sorted(lexicons.matcher.terms) if lexicons else []


def load_result(bench: Workbench, user: User, call_id: str) -> CallResult:
    """The stored result of a call the user may open.

    Raises:
        HTTPException: 404 when there is no such call, 403 when it is another manager's.
    """
    checked_call_id(call_id)
    data = bench.store.read(result_key(call_id))
    if data is None:
        raise HTTPException(404, "нет такого звонка")
    try:
        result = CallResult.from_json(data)
    except ValueError as error:
        raise HTTPException(409, f"результат звонка не читается: {type(error).__name__}") from None
    if not bench.may_open(user, result.metadata.manager_id):
        logger.warning("%s (%s) was refused call %s of manager %s", user.login, user.role, call_id,
                       result.metadata.manager_id)
        raise HTTPException(403, "это звонок другого менеджера")
    return result


@dataclass
class TurnView:
    index: int
    turn: Turn
    words: list[tuple[Word, str | None]] = field(default_factory=list)  # a word and its hit's label, if any


def _turn_views(result: CallResult) -> list[TurnView]:
    """Each turn with its words, each word with the lexicon hit it belongs to (for highlighting)."""
    views = [TurnView(index, turn) for index, turn in enumerate(result.turns)]
    by_speaker: dict[str, list[TurnView]] = {}
    for view in views:
        by_speaker.setdefault(view.turn.speaker, []).append(view)
    hits = sorted(result.hits, key=lambda h: h.start)
    starts = [hit.start for hit in hits]
    position = dict.fromkeys(by_speaker, 0)
    for word in result.words:
        turns = by_speaker.get(word.speaker)
        if not turns:
            continue
        at = position[word.speaker]
        while at + 1 < len(turns) and word.start >= turns[at + 1].turn.start - 1e-6:
            at += 1
        position[word.speaker] = at
        turns[at].words.append((word, _hit_label(word, hits, starts)))
    return views


def _hit_label(word: Word, hits: list[Hit], starts: list[float]) -> str | None:
    for hit in hits[max(0, bisect.bisect_right(starts, word.start + 1e-6) - 8):
                    bisect.bisect_right(starts, word.start + 1e-6)]:
        if hit.role in (word.role, "unknown") and hit.start - 1e-6 <= word.start and word.end <= hit.end + 1e-6:
            return f"{hit.lexicon}: {hit.term}"
    return None


@router.get("/calls/{call_id}")
def call_page(request: Request, call_id: str):
    user = current_user(request)
    bench = bench_of(request)
    result = load_result(bench, user, call_id)
    reviews = _reviews(bench, call_id)
    return bench.render(request, "call.html.j2", result=result, turns=_turn_views(result), reviews=reviews,
                        audio_reason=_no_audio_reason(bench, user, result),
                        verdict_titles=VERDICT_TITLES, role_titles=ROLE_TITLES,
                        may_review=bench.allowed(user, "review") and result.score is not None)


def _reviews(bench: Workbench, call_id: str) -> list:
    from pipeline.reviews import read_reviews

    try:
        return list(reversed(read_reviews(bench.store, call_id)))
    except CallqaError as error:
        logger.warning("reviews of %s unreadable: %s", call_id, error)
        return []


def _no_audio_reason(bench: Workbench, user: User, result: CallResult) -> str | None:
    """Why the call cannot be played (None: it can), so the page says so instead of showing a dead player."""
    from pipeline.audio_copy import NoAudio, open_call_audio

    try:
        audio = open_call_audio(bench.store, result.call_id, source_uri=result.source.uri, s3=bench.settings.s3)
    except CallqaError as error:
        logger.warning("audio of %s unavailable: %s", result.call_id, error)
        return "хранилище записей недоступно"
    return _audio_reason_for(user, audio.reason) if isinstance(audio, NoAudio) else None


def _audio_reason_for(user: User, reason: str) -> str:
    """Why there is no audio, as this user may read it: paths and storage errors only for QA leads."""
    return reason if user.role == "qa" else "запись не сохранена или недоступна"


_RANGE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")


@router.get("/calls/{call_id}/audio")
def call_audio(request: Request, call_id: str):
    """The call's audio, with HTTP range requests (the player seeks by asking for the bytes it needs)."""
    from pipeline.audio_copy import NoAudio, open_call_audio

    user = current_user(request)
    bench = bench_of(request)
    result = load_result(bench, user, call_id)
    try:
        audio = open_call_audio(bench.store, call_id, source_uri=result.source.uri, s3=bench.settings.s3)
    except CallqaError as error:
        logger.warning("audio of %s unavailable: %s", call_id, error)
        raise HTTPException(503, "хранилище записей недоступно") from None
    if isinstance(audio, NoAudio):
        raise HTTPException(404, "нет записи: " + _audio_reason_for(user, audio.reason))
    size = audio.size
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, no-store"}
    asked = request.headers.get("range")
    if not asked:  # the whole file, a megabyte at a time: an hour of WAV is not held in memory
        def chunks():
            for at in range(0, size, 1 << 20):
                yield audio.read(at, min(1 << 20, size - at))

        return StreamingResponse(chunks(), media_type=audio.content_type,
                                 headers={**headers, "Content-Length": str(size)})
    match = _RANGE.match(asked.strip())
    if not match or match.groups() == ("", ""):
        raise HTTPException(416, "bad range", headers={"Content-Range": f"bytes */{size}"})
    first, last = match.groups()
    if first == "":  # the last N bytes
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise HTTPException(416, "range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
    end = min(end, start + 4 * 1024 * 1024 - 1)  # at most 4 MB an answer: the player asks again
    body = audio.read(start, end - start + 1)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(body, status_code=206, media_type=audio.content_type, headers=headers)


@router.post("/calls/{call_id}/reviews", dependencies=[Depends(check_csrf)])
def add_call_review(request: Request, call_id: str, criterion: Annotated[str, Form(max_length=200)],
                    verdict: Annotated[str, Form(max_length=40)],
                    comment: Annotated[str, Form(max_length=2000)] = ""):
    """A QA lead's verdict on one criterion: stored (append-only), then the call is derived again with it."""
    from pipeline.reviews import Review, add_review, rescore_stored

    user = require(request, "review")
    bench = bench_of(request)
    result = load_result(bench, user, call_id)
    if verdict not in ("met", "not_met", "not_applicable"):
        raise HTTPException(422, f"неизвестный вердикт {verdict!r}: met, not_met или not_applicable")
    scorecard = bench.setup.scorecard
    if result.score is None or scorecard is None:
        raise HTTPException(422, "у звонка нет оценки: проверять нечего")
    if criterion not in {c.id for c in result.score.criteria}:
        raise HTTPException(422, f"в оценке звонка нет критерия {criterion!r}")
    try:
        review = Review.for_criterion(result, scorecard, criterion=criterion, verdict=verdict,  # type: ignore[arg-type]
                                      reviewer=user.login, reviewer_name=user.name, comment=comment.strip(),
                                      at=datetime.fromtimestamp(bench.clock(), UTC).isoformat(timespec="seconds"))
        add_review(bench.store, review)
        updated = rescore_stored(bench.store, call_id, bench.setup)
    except CallqaError as error:
        raise HTTPException(409, f"проверка не сохранена: {error}") from None
    if updated is not None:
        bench.index.put(updated)
    logger.info("%s reviewed %s / %s: %s", user.login, call_id, criterion, verdict)
    return RedirectResponse(f"/calls/{call_id}#criterion-{criterion}", status_code=303)
