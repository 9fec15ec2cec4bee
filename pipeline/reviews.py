"""People's verdicts on a call's criteria: stored beside the call, append-only, and applied by `derive`.

    calls/<call_id>/reviews.json    {"schema": "callqa.reviews/1", "reviews": [review, ...]}, oldest first

A QA lead listens to a call and says whether a criterion was met. The review is appended to the call's list
(`add_review`: a conditional write, tried again when another reviewer appended meanwhile, so nobody's review is
ever overwritten), then the call's result is derived again with the list (`rescore_stored`): the criterion
follows the person's verdict, the total is made again from it, and the score says who reviewed
(`Score.reviewed_by`). Every derive of a stored call (the nightly run's finish and re-score steps, `callqa rescore`)
reads the list again, so a review outlives any re-scoring. For each criterion the latest review counts; earlier
ones stay in the list as its history, and so do reviews of criteria the scorecard has since dropped.

    review = Review.for_criterion(result, setup.scorecard, criterion="greeting", verdict="met",
                                  reviewer="ivanova", reviewer_name="Анна Иванова", at="2026-12-03T10:15:00Z")
    add_review(store, review)                       # the whole list, the new review last
    result = rescore_stored(store, review.call_id, setup)

Errors (both `CallqaError`s, so a command prints them as one line):

    CallqaError
    ├── ReviewError          a review for a criterion the scorecard lacks, or an unreadable reviews.json
    └── StoreError
        └── ReviewConflict   the list kept changing under `add_review` (many reviewers at once): try again
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.derive import DeriveSetup, derive
from pipeline.errors import CallqaError
from pipeline.schema import CallResult, ReviewVerdict, Verdict
from pipeline.scoring import Scorecard
from pipeline.stores import ArtifactStore, StoreError, result_key, reviews_key, transcript_key
from pipeline.transcript import Transcript, read_transcript

__all__ = ["MAX_ATTEMPTS", "REVIEWS_SCHEMA", "Review", "ReviewConflict", "ReviewError", "add_review", "check_review",
           "parse_reviews", "read_reviews", "rescore_stored", "reviews_in", "rule_fingerprint", "store_result"]

logger = logging.getLogger(__name__)

REVIEWS_SCHEMA = "callqa.reviews/1"
MAX_ATTEMPTS = 10  # conditional writes lost in a row before giving up: each loss is another reviewer's success


class ReviewError(CallqaError):
    """A review that cannot be taken: its criterion is not in the scorecard, or the stored list is unreadable."""

    exit_code = 1


class ReviewConflict(StoreError):
    """Other reviewers kept appending to the call's list while this review tried to: nothing was written."""


class Review(BaseModel):
    """One person's verdict on one criterion of one call.

    Attributes:
        call_id: the call.
        criterion: the scorecard criterion's id.
        verdict: met, not_met or not_applicable (a person is never "uncertain").
        comment: why, for the manager and the QA lead (Russian).
        reviewer: the reviewer's login; reviewer_name: their name as people read it.
        at: when, ISO 8601 (given by the caller; stored in UTC).
        automatic: the machine's verdict the reviewer saw (None: not known).
        scorecard_version: the scorecard the call was scored with then.
        rule: the criterion's rule fingerprint then (`Criterion.fingerprint`): a later change of the rule shows
            as `rule_changed` on the reviewed criterion.
    """

    # Fields a later callqa adds are ignored here when read, and kept in the file when appending (`add_review`
    # copies the stored entries as they are).
    model_config = ConfigDict(frozen=True, extra="ignore")

    call_id: str = Field(min_length=1)
    criterion: str = Field(min_length=1)
    verdict: ReviewVerdict
    comment: str = ""
    reviewer: str = Field(min_length=1)
    reviewer_name: str = Field(min_length=1)
    at: str
    automatic: Verdict | None = None
    scorecard_version: str | None = None
    rule: str | None = None

    @field_validator("at")
    @classmethod
    def _utc(cls, value: str) -> str:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as error:
            raise ValueError(f"not an ISO 8601 time: {value!r}") from error
        if moment.tzinfo is None:
            raise ValueError(f"{value!r} has no time zone (give UTC, e.g. 2026-12-03T10:15:00Z)")
        return moment.astimezone(UTC).isoformat()

    @classmethod
    def for_criterion(cls, result: CallResult, scorecard: Scorecard, *, criterion: str, verdict: ReviewVerdict,
                      reviewer: str, reviewer_name: str, at: str, comment: str = "") -> Review:
        """A review of the criterion `criterion` of the call `result`, filled with what the reviewer saw: the
        machine's verdict, the scorecard version and the criterion's rule fingerprint.

        Raises:
            ReviewError: the scorecard has no such criterion.
        """
        shown = next((c for c in result.score.criteria if c.id == criterion), None) if result.score else None
        automatic = None if shown is None else shown.review.automatic if shown.review else shown.verdict
        review = cls(call_id=result.call_id, criterion=criterion, verdict=verdict, comment=comment, reviewer=reviewer,
                     reviewer_name=reviewer_name, at=at, automatic=automatic,
                     scorecard_version=result.scorecard_version)
        check_review(review, scorecard)
        return review.model_copy(update={"rule": rule_fingerprint(scorecard, criterion)})

def rule_fingerprint(scorecard: Scorecard, criterion: str) -> str | None:
    """The criterion's rule fingerprint in this scorecard (`Criterion.fingerprint`), what a review stores;
    None when the scorecard has no such criterion."""
    found = next((c for c in scorecard.definition.criteria if c.id == criterion), None)
    return None if found is None else found.fingerprint()


def check_review(review: Review, scorecard: Scorecard) -> None:
    """Refuse a review of a criterion the scorecard does not have (`add_review` stores any review as given).

    Raises:
        ReviewError: naming the criterion and the scorecard's criteria.
    """
    ids = [criterion.id for criterion in scorecard.definition.criteria]
    if review.criterion not in ids:
        raise ReviewError(f"call {review.call_id}: scorecard {scorecard.id!r} has no criterion "
                          f"{review.criterion!r}; expected one of: {', '.join(ids)}")


def _document(data: bytes, where: str) -> dict:
    """The stored list as JSON, its entries as they are (checked to be reviews by `parse_reviews`)."""
    try:
        document = json.loads(data)
    except ValueError as error:
        raise ReviewError(f"{where}: not JSON: {error}") from error
    if not isinstance(document, dict) or document.get("schema") != REVIEWS_SCHEMA \
            or not isinstance(document.get("reviews"), list):
        found = document.get("schema") if isinstance(document, dict) else None
        raise ReviewError(f"{where}: not a {REVIEWS_SCHEMA} list of reviews (schema {found!r})")
    return document


def parse_reviews(data: bytes, *, where: str = "reviews.json") -> list[Review]:
    """The reviews a stored `reviews.json` holds, oldest first.

    Raises:
        ReviewError: the file is not a list of reviews (`where` names it).
    """
    entries = _document(data, where)["reviews"]
    try:
        return [Review.model_validate(entry) for entry in entries]
    except ValidationError as error:
        first = error.errors()[0]
        raise ReviewError(f"{where}: a review is invalid ({'.'.join(map(str, first['loc']))}: "
                          f"{first['msg']})") from error


def read_reviews(store: ArtifactStore, call_id: str) -> list[Review]:
    """The call's reviews, oldest first (none stored: an empty list). One read of the store.

    Raises:
        ReviewError: the stored list is unreadable.
        StoreError: the store cannot be read.
    """
    data = store.read(reviews_key(call_id))
    return [] if data is None else parse_reviews(data, where=f"{store.describe()}/{reviews_key(call_id)}")


def add_review(store: ArtifactStore, review: Review) -> list[Review]:
    """Append `review` to its call's list and return the whole list (the new review last).

    The list is replaced only if it did not change since it was read (created only if absent for the first
    review): when another reviewer appended meanwhile, the list is read again and the review appended to it, up
    to `MAX_ATTEMPTS` times. The criterion is not checked here: `check_review` (or `Review.for_criterion`) first.

        reviews = add_review(store, review)

    Raises:
        ReviewConflict: the list changed under every attempt; nothing was written.
        ReviewError: the stored list is unreadable (it is left as it is).
        StoreError: the store cannot be read or written.
    """
    key = reviews_key(review.call_id)
    where = f"{store.describe()}/{key}"
    entry = review.model_dump(mode="json")
    for _ in range(MAX_ATTEMPTS):
        current = store.read_versioned(key)
        document = _document(current.data, where) if current else {"schema": REVIEWS_SCHEMA, "reviews": []}
        document["reviews"] = [*document["reviews"], entry]
        data = (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode()
        if current is None:
            written = store.write(key, data, only_if_absent=True)
        else:
            written = store.write(key, data, if_version=current.version)
        if written:
            return parse_reviews(data, where=where)
    raise ReviewConflict(f"{where}: the reviews kept changing while {review.reviewer} added one "
                         f"({MAX_ATTEMPTS} attempts); nothing was written, try again")


def reviews_in(result: CallResult) -> list[Review]:
    """The reviews a result applied (the latest of each reviewed criterion), as reviews again: what re-scoring
    a result file with no `reviews.json` beside it keeps. The machine's verdict at review time is not known."""
    if result.score is None:
        return []
    return [Review(call_id=result.call_id, criterion=c.id, verdict=c.review.verdict, comment=c.review.comment,
                   reviewer=c.review.reviewer, reviewer_name=c.review.reviewer_name, at=c.review.at, rule=c.review.rule)
            for c in result.score.criteria if c.review is not None]


def _listed(store: ArtifactStore, key: str) -> tuple[str | None, list[Review]]:
    found = store.read_versioned(key)
    if found is None:
        return None, []
    return found.version, parse_reviews(found.data, where=f"{store.describe()}/{key}")


def store_result(store: ArtifactStore, transcript: Transcript, setup: DeriveSetup) -> CallResult:
    """Derive the call's result with its stored reviews and write it (`result.json`); what every step that
    stores a result calls, so no re-scoring drops a review.

    A review added between reading the list and writing the result would be missing from it: the list is read
    once more after the write, and the result made again if it changed (up to `MAX_ATTEMPTS` times), so the
    result written last holds every review. Two reads of the store besides the write.

    Raises:
        ReviewError: the stored list is unreadable (no result is written).
        StoreError: the store cannot be read or written.
    """
    key = reviews_key(transcript.call_id)
    version, reviews = _listed(store, key)
    for _ in range(MAX_ATTEMPTS):
        result = derive(transcript, setup, reviews)
        store.write(result_key(transcript.call_id), result.to_json().encode())
        now, latest = _listed(store, key)
        if now == version:
            return result
        version, reviews = now, latest
    logger.warning("call %s: reviews kept arriving while its result was stored; the next re-score applies them",
                   transcript.call_id)
    return result


def rescore_stored(store: ArtifactStore, call_id: str, setup: DeriveSetup) -> CallResult | None:
    """Derive a stored call's result again from its transcript and reviews, and store it (after `add_review`).
    None: the store holds no transcript of the call.

    Raises:
        ReviewError: the stored list of reviews is unreadable.
        StoreError: the store cannot be read or written.
        ValueError: the stored transcript is not one.
    """
    data = store.read(transcript_key(call_id))
    return None if data is None else store_result(store, read_transcript(data), setup)

