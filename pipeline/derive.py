"""Everything a reader sees of a call, derived from its stored transcript: the one place a result is made.

    transcript ──derive(transcript, setup, reviews)──> CallResult
                  roles -> labelled words -> turns -> metrics -> quality -> hits -> score -> reviews -> warnings

`derive` is pure: no clock, no disk, no network; the same transcript, setup and reviews always give the same
result. People's reviews of criterion verdicts (pipeline/reviews.py) come last and override the machine's.
`callqa analyze`, the nightly run's finish step, `callqa rescore` and the nightly run's re-score all call it, so
a call re-scored tomorrow reads exactly as if it had been analysed with tomorrow's lexicons.

    setup = DeriveSetup.load()                       # lexicons and scorecard, checked before any call
    result = derive(read_transcript(data), setup, read_reviews(store, call_id))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import TypeAdapter

from pipeline.lexicon import DEFAULT_LEXICONS, LexiconSet, load_lexicons
from pipeline.lexicon.matcher import NEAR_MISS_MAX_PROB, CallMatches
from pipeline.metrics import MetricsOptions, compute_metrics_and_talk, talk_by_speaker
from pipeline.quality import QualityOptions, assess_quality
from pipeline.roles import RoleOptions, roles_from_channel_map, roles_of_mono_call, unknown_roles_warning
from pipeline.schema import CallResult, Hit, Metrics, Role, RoleDetection, Score, Speaker, Turn, Word, roles_known
from pipeline.scoring import DEFAULT_SCORECARD, CallFacts, Scorecard, load_scorecard
from pipeline.scoring.model import Selector
from pipeline.speakers import CHANNEL_SPEAKERS
from pipeline.transcript import Transcript
from pipeline.turns import build_turns

if TYPE_CHECKING:
    from pipeline.reviews import Review
    from pipeline.settings import Settings

__all__ = ["SCORE_WARNING", "DeriveSetup", "derive"]

SCORE_WARNING = "score not computed: "  # how every warning of scoring begins


@dataclass(frozen=True)
class DeriveSetup:
    """What turns a transcript into a result: the lexicons, the scorecard and the reading half's options.

    Attributes:
        lexicons: hits, and the role cues of diarized mono calls (None: no hits, no cues).
        scorecard: None: no score.
        missing: what the scorecard needs that the lexicons lack (the score is then null, with a warning).
    """

    lexicons: LexiconSet | None = None
    scorecard: Scorecard | None = None
    missing: tuple[str, ...] = ()
    roles: RoleOptions = field(default_factory=RoleOptions)
    metrics: MetricsOptions = field(default_factory=MetricsOptions)
    quality: QualityOptions = field(default_factory=QualityOptions)
    turn_max_pause_s: float = 2.0

    @classmethod
    def load(cls, lexicons: str | Path | None = None, scorecard: str | Path | None = None, *,
             score: bool = True, settings: Settings | None = None) -> DeriveSetup:
        """Load the lexicon folder and the scorecard (defaults: the shipped ones), with `settings`' options.

        A scorecard named explicitly must find every lexicon it uses (else DefinitionError, before any call);
        the default scorecard with a folder that lacks some only leaves `score` null with a warning, so a QA
        lead's own folder still yields its hits.

        Raises:
            DefinitionError: a lexicon file or the scorecard is invalid (every problem with file and line).
        """
        options = cls.options_of(settings)
        lexicon_set = load_lexicons(lexicons or DEFAULT_LEXICONS)
        if not score:
            return cls(lexicons=lexicon_set, **options)
        loaded = load_scorecard(scorecard or DEFAULT_SCORECARD)
        if scorecard is not None:
            loaded.check_against(lexicon_set)
        return cls(lexicons=lexicon_set, scorecard=loaded, missing=tuple(loaded.missing_from(lexicon_set)),
                   **options)

    @staticmethod
    def options_of(settings: Settings | None) -> dict:
        """The reading half's options from `settings` (none: the defaults)."""
        if settings is None:
            return {}
        return {"roles": settings.roles, "metrics": settings.metrics, "quality": settings.quality,
                "turn_max_pause_s": settings.turn_max_pause_s}


def derive(transcript: Transcript, setup: DeriveSetup, reviews: Sequence[Review] = ()) -> CallResult:
    """The call's result, made from scratch from its transcript.

    Args:
        transcript: what the audio half stored (or an old result read as one, `read_transcript`).
        setup: lexicons, scorecard and options.
        reviews: people's verdicts on the call's criteria (pipeline/reviews.py, oldest first), applied last:
            for each criterion the last review counts, and the score's total is made again from them
            (`Scorecard.reviewed`). Reviews of criteria the scorecard lacks, and all of them when the call has
            no score, change nothing.

    Raises:
        ValueError: a review of another call.
    """
    if reviews and any(review.call_id != transcript.call_id for review in reviews):
        raise ValueError(f"derive: reviews of another call given for call {transcript.call_id}")
    roles, detection, mono_matches = _roles(transcript, setup)
    words = _labelled(transcript, roles)
    turns = build_turns(words, max_pause_s=setup.turn_max_pause_s)
    metrics, talk_s = _metrics(transcript, words, turns, setup)
    quality = assess_quality(
        duration_s=transcript.duration_s, metrics=metrics, word_count=len(words), file_channels=transcript.channels,
        layout=transcript.layout, layout_reason=transcript.layout_reason, silent_channels=transcript.silent_channels,
        detected_language=(None if (heard := transcript.detected_language) is None
                           else (heard.language, heard.probability, heard.expected_probability)),
        language=transcript.language, damaged_s=sum(gap.end - gap.start for gap in transcript.audio_gaps),
        options=setup.quality)
    hits = []
    if setup.lexicons is not None:
        matcher = setup.lexicons.matcher
        hits = (matcher.hits_in(mono_matches, transcript.duration_s, roles) if mono_matches is not None
                else matcher.find_hits(words, turns, transcript.duration_s))
    score, score_warning = _score(transcript, words, turns, metrics, hits, setup)
    if reviews and score is not None and setup.scorecard is not None:
        score = setup.scorecard.reviewed(score, reviews)
    roles_warning = unknown_roles_warning(detection) if detection is not None else None
    warnings = [gate.message for gate in quality.gates if not gate.passed and gate.message]
    warnings += [*transcript.audio_warnings, *transcript.speaker_warnings]
    warnings += [roles_warning] if roles_warning else []
    warnings += [*transcript.asr_warnings, *([score_warning] if score_warning else [])]
    return CallResult(
        call_id=transcript.call_id,
        source=transcript.source,
        duration_s=transcript.duration_s,
        channels=transcript.channels,
        layout=transcript.layout,
        language=transcript.language,
        direction=transcript.direction,
        manager_channel=transcript.manager_channel,
        metadata=transcript.metadata,
        role_detection=detection,
        model=transcript.model,
        lexicon_version=setup.lexicons.version if setup.lexicons else None,
        scorecard_version=setup.scorecard.version if setup.scorecard and score is not None else None,
        warnings=warnings,
        quality=quality,
        audio_gaps=transcript.audio_gaps,
        speakers=[Speaker(id=s.id, role=roles.get(s.id, "unknown"), channel=s.channel,
                          talk_s=round(talk_s.get(s.id, 0.0), 2), confidence=s.confidence)
                  for s in transcript.speakers],
        words=words,
        turns=turns,
        metrics=metrics,
        hits=hits,
        score=score,
        analyzed_at=transcript.analyzed_at,
        callqa_version=transcript.callqa_version,
    )


def _near_misses(lexicons: LexiconSet, words: list[Word], turns: list[Turn],
                 duration_s: float) -> Callable[[Selector], list[Hit]]:
    """What nearly matched a criterion's selector, looked for only in the words it looks at (its role and time
    window): scoring asks only for criteria that failed."""

    by_role: dict[str, list[Word]] = {}  # the words of each role, split once for all failed criteria

    def near(selector: Selector) -> list[Hit]:
        looked_at = words
        if selector.role != "any":
            if selector.role not in by_role:
                by_role[selector.role] = [word for word in words if word.role == selector.role]
            looked_at = by_role[selector.role]
        if selector.within is not None:
            within = selector.within
            looked_at = [word for word in looked_at if within.contains(word.start, word.end, duration_s)]
        if all(word.prob >= NEAR_MISS_MAX_PROB for word in looked_at):
            return []  # every near miss holds a word the recogniser doubted
        return lexicons.matcher.near_misses(looked_at, turns, duration_s, selector.lexicon, selector.term)

    return near


_WORDS = TypeAdapter(list[Word])


def _labelled(transcript: Transcript, roles: dict[str, Role]) -> list[Word]:
    """The transcript's words with their speakers' roles ("unknown" where none). Validated as one list: a third
    of the time of building each Word on its own, which re-scoring thousands of calls feels; strictly, a fifth
    less again (the values are the validated SpokenWord's own, already of the right types)."""
    return _WORDS.validate_python([{**word.__dict__, "role": roles.get(word.speaker, "unknown")}
                                   for word in transcript.words], strict=True)


def _roles(transcript: Transcript, setup: DeriveSetup) -> tuple[dict[str, Role], RoleDetection | None,
                                                               CallMatches | None]:
    """The speakers' roles and how they were found; for a diarized mono call also its lexicon matches, searched
    once on its words before their roles were known, for the role cues and then for its hits."""
    if transcript.separation == "channels":
        manager_channel = transcript.manager_channel or 0
        return roles_from_channel_map(manager_channel), RoleDetection(
            method="channels", manager=CHANNEL_SPEAKERS[manager_channel], confidence=1.0), None
    if transcript.separation == "none":
        return {s.id: "unknown" for s in transcript.speakers}, RoleDetection(method="none"), None
    unlabelled = _labelled(transcript, {})
    turns = build_turns(unlabelled, max_pause_s=setup.turn_max_pause_s)
    lexicons = setup.lexicons
    matches = lexicons.matcher.call_matches(unlabelled, turns) if lexicons is not None else None
    cue_hits = (lexicons.matcher.hits_in(matches, max((w.end for w in unlabelled), default=0.0))
                if lexicons is not None and matches is not None and lexicons.role_cues else [])
    kept = transcript.kept_role_evidence
    roles, detection = roles_of_mono_call(
        unlabelled, turns, cue_hits, lexicons=lexicons,
        direction=None if any(item.kind == "direction" for item in kept) else transcript.direction,
        voiceprint=transcript.voiceprint, kept=kept, options=setup.roles)
    return roles, detection.model_copy(update={"lexicon_version": lexicons.version if lexicons
                                               else None}), matches


def _metrics(transcript: Transcript, words: list[Word], turns: list[Turn],
             setup: DeriveSetup) -> tuple[Metrics, dict[str, float]]:
    """The call's metrics, and each speaker's seconds of talk."""
    if transcript.stored_metrics is not None and transcript.activity is None:
        # A stereo result stored before transcripts kept the legs' activity: its overlaps were measured on
        # that activity, which is gone; its roles cannot have changed (the channel map), so neither can these.
        return transcript.stored_metrics, talk_by_speaker(words, setup.metrics.fill_gap_s)
    return compute_metrics_and_talk(words, turns, setup.metrics, activity=transcript.activity)


def _score(transcript: Transcript, words: list[Word], turns: list[Turn], metrics: Metrics, hits: list[Hit],
           setup: DeriveSetup) -> tuple[Score | None, str | None]:
    """The score, or why there is none."""
    scorecard = setup.scorecard
    if scorecard is None:
        return None, None
    if setup.missing:
        folder = setup.lexicons.folder if setup.lexicons else None
        return None, (f"{SCORE_WARNING}scorecard {scorecard.id!r} needs lexicons missing from {folder}: "
                      f"{', '.join(setup.missing)}")
    if not words:
        return None, f"{SCORE_WARNING}no speech"
    if not roles_known(words):
        return None, f"{SCORE_WARNING}manager and client are not known in this call"
    facts = CallFacts(hits=hits, turns=turns, metrics=metrics, duration_s=transcript.duration_s,
                      direction=transcript.direction,
                      near_misses=None if setup.lexicons is None else _near_misses(
                          setup.lexicons, words, turns, transcript.duration_s))
    return scorecard.score(facts, setup.lexicons), None
