"""Conversation dynamics from the attributed words and turns. docs/metrics.md defines each figure for users.

Everything here is interval arithmetic on word times, so it runs the same on stereo and diarized mono calls and
on a stored transcript without the audio.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict

from pipeline.schema import Metrics, PerRole, PerRoleCount, Role, Turn, Word, roles_known

__all__ = ["MetricsOptions", "compute_metrics", "compute_metrics_and_talk", "is_question", "speech_intervals",
           "talk_by_speaker"]

Interval = tuple[float, float]


class MetricsOptions(BaseModel):
    """
    Attributes:
        fill_gap_s: pauses between one speaker's words up to this long count as talk (breaths inside a phrase).
        long_silence_s: a pause of both parties at least this long counts as a long silence (MiiTel uses 3 s).
        monologue_max_pause_s: a monologue ends at the other party's first word or a pause longer than this.
        interruption_min_overlap_s: to interrupt, a speaker must start while the other keeps talking at least
            this much longer (shorter overlaps are ordinary turn-taking).
        min_talk_for_rate_s: below this much talk, a speech rate is not meaningful and is null.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    fill_gap_s: float = 1.0
    long_silence_s: float = 3.0
    monologue_max_pause_s: float = 3.0
    interruption_min_overlap_s: float = 0.3
    min_talk_for_rate_s: float = 2.0


def _merge(intervals: Iterable[Interval], fill_gap_s: float = 0.0) -> list[Interval]:
    # Plain floats and comparisons rather than max() and a list per interval: re-scoring merges every word span.
    merged: list[Interval] = []
    first = True
    current_start = current_end = 0.0
    for start, end in sorted(intervals):
        if first:
            current_start, current_end, first = start, end, False
        elif start - current_end <= fill_gap_s:
            if end > current_end:
                current_end = end
        else:
            merged.append((current_start, current_end))
            current_start, current_end = start, end
    if not first:
        merged.append((current_start, current_end))
    return merged


def _length(intervals: Iterable[Interval]) -> float:
    return sum(end - start for start, end in intervals)


def _spans_by_speaker(words: list[Word]) -> dict[str, list[Interval]]:
    """Per speaker, their words' (start, end), in the words' order."""
    by_speaker: dict[str, list[Interval]] = {}
    for word in words:
        by_speaker.setdefault(word.speaker, []).append((word.start, word.end))
    return by_speaker


def speech_intervals(words: list[Word], fill_gap_s: float = 1.0) -> dict[str, list[Interval]]:
    """Per speaker, the stretches of talk: word spans with short pauses between them filled in."""
    return {speaker: _merge(spans, fill_gap_s) for speaker, spans in _spans_by_speaker(words).items()}


def talk_by_speaker(words: list[Word], fill_gap_s: float = 1.0) -> dict[str, float]:
    """Seconds of talk per speaker (see `speech_intervals`)."""
    return {speaker: _length(spans) for speaker, spans in speech_intervals(words, fill_gap_s).items()}


def _overlap_length(first: list[Interval], second: list[Interval]) -> float:
    total, i, j = 0.0, 0, 0
    while i < len(first) and j < len(second):
        total += max(0.0, min(first[i][1], second[j][1]) - max(first[i][0], second[j][0]))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return total


def _monologues(words: list[Word], max_pause_s: float) -> list[tuple[str, float]]:
    """(speaker, duration) of each stretch where one speaker talks and the other says nothing."""
    stretches: list[tuple[str, float]] = []
    speaker, start, end = None, 0.0, 0.0
    for word in words:
        if word.speaker == speaker and word.start - end <= max_pause_s:
            end = max(end, word.end)
            continue
        if speaker is not None:
            stretches.append((speaker, end - start))
        speaker, start, end = word.speaker, word.start, word.end
    if speaker is not None:
        stretches.append((speaker, end - start))
    return stretches


def _reach(spans: Iterable[Interval]) -> tuple[list[float], list[float]]:
    """The spans' starts in order, and for each the latest end among the spans starting no later: `any(span
    starts before t and ends after u)` becomes one bisect instead of a scan (re-scoring walks every span)."""
    starts: list[float] = []
    reach: list[float] = []
    latest = float("-inf")
    for start, end in sorted(spans):
        starts.append(start)
        if end > latest:
            latest = end
        reach.append(latest)
    return starts, reach


def _latest_end_before(starts: list[float], reach: list[float], time: float) -> float | None:
    """The latest end of the spans that start strictly before `time` (None: no such span)."""
    index = bisect_left(starts, time)
    return reach[index - 1] if index else None


def _interruptions(intervals: dict[str, list[Interval]], min_overlap_s: float) -> dict[str, int]:
    """Per speaker, how many times they started talking while another speaker went on for min_overlap_s."""
    counts = dict.fromkeys(intervals, 0)
    for speaker, own in intervals.items():
        starts, reach = _reach(span for other, spans in intervals.items() if other != speaker for span in spans)
        for start, _end in own:
            latest = _latest_end_before(starts, reach, start)
            if latest is not None and latest >= start + min_overlap_s:
                counts[speaker] += 1
    return counts


_SENTENCE_SPLIT = re.compile(r"(?<=[.!?…])\s+")
_WORD = re.compile(r"[а-яёa-z]+")
# Whisper often writes no question mark on telephone audio; a sentence still asks something when, after
# particles, politeness and a pronoun ("а вам", "скажите, пожалуйста"), its first word is an interrogative, or
# a word requests and checks open with ("удобно говорить", "можно узнать", "подскажете") followed by more words:
# a bare "Удобно." is an answer.
_INTERROGATIVES = frozenset(
    "как какой какая какое какие какую каком какого каких какому сколько когда где почему зачем куда откуда "
    "кто кого кому чей чья чьё чье чьи разве неужели".split()
)
_REQUESTS = frozenset("удобно можно подскажете скажете можете могли хотите хотели интересует устроит "
                      "устраивает".split())
_OPENERS = frozenset("а и ну так скажите подскажите пожалуйста уточните простите извините вам вас вы".split())
# Openers that address the listener (or turn to them: "а можно..."): after one of them a clause asks even in
# the middle of a sentence ("Меня зовут Алексей, вам удобно сейчас говорить", "..., подскажите, какой объём").
_ADDRESSING = frozenset("а скажите подскажите уточните вам вас вы".split())
# "Не подскажете...", "не могли бы...": a negated request is still a request ("не удобно" is not).
_NEGATED_REQUESTS = frozenset("подскажете скажете могли можете хотите".split())
# A tag at the end turns a statement into a check: "вы были у нас, да", "в пятницу в шесть, подходит".
_TAG = re.compile(r",\s*(?:да|верно|правильно|так|не так ли|не правда ли|ведь так|подходит|устроит|"
                  r"договорились)\s*[.!…]*$")
_CLAUSE_SPLIT = re.compile(r"[,;:—–]\s*")
# A text none of whose words is one of these, without "?" or "чем могу", asks nothing by any rule below.
_QUESTION_WORDS = _INTERROGATIVES | _REQUESTS | frozenset(
    "ли не да верно правильно так правда ведь подходит устроит договорились".split())


def _may_ask(lowered: str, words: list[str]) -> bool:
    """Whether a lower-cased text (a sentence, or a turn of them) may ask anything by `is_question`'s rules: most
    sentences and turns of a call are ruled out by one set comparison (re-scoring measures every one)."""
    return "?" in lowered or "чем могу" in lowered or not _QUESTION_WORDS.isdisjoint(words)


def _asks(tokens: list[str], *, addressed_only: bool) -> bool:
    """Whether a clause opens (after particles and a pronoun) with an interrogative or a request; with
    `addressed_only`, only after an opener that addresses the listener."""
    addressed = False
    for index, token in enumerate(tokens):
        if token in _INTERROGATIVES or (token in _REQUESTS and index + 1 < len(tokens)):
            return addressed or not addressed_only
        if token == "не" and index + 1 < len(tokens) and tokens[index + 1] in _NEGATED_REQUESTS:
            return addressed or not addressed_only
        if token not in _OPENERS:
            return False
        addressed = addressed or token in _ADDRESSING
    return False


def is_question(sentence: str) -> bool:
    """Whether a sentence asks something, with or without its question mark (Whisper often drops it on
    telephone audio): it ends in '?'; it holds the particle 'ли' or "чем могу"; it opens (after particles and a
    pronoun) with an interrogative word or a request ("удобно говорить", "можно узнать", "не подскажете"); a
    later clause does so after addressing the listener ("..., вам удобно говорить", "..., подскажите, какой");
    or a statement of three words or more ends in a tag (", да", ", верно", ", подходит")."""
    text = sentence.rstrip()
    if text.endswith("?"):
        return True
    lowered = text.lower()
    tokens = _WORD.findall(lowered)
    if "ли" in tokens or "чем могу" in lowered:
        return True
    if not _may_ask(lowered, tokens):
        return False
    if (tag := _TAG.search(lowered)) and len(_WORD.findall(lowered[:tag.start()])) >= 3:
        return True
    if _asks(tokens, addressed_only=False):
        return True
    clauses = [_WORD.findall(clause) for clause in _CLAUSE_SPLIT.split(lowered)][1:]
    pending: list[str] = []
    for clause in clauses:
        # A clause of openers only ("подскажите,") leads into the next one.
        if clause and all(token in _OPENERS for token in clause):
            pending += clause
            continue
        if _asks(pending + clause, addressed_only=True):
            return True
        pending = []
    return False


def _questions(turns: list[Turn]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for turn in turns:
        # The quick rule for the whole turn at once: its sentences' words are the turn's words.
        lowered = turn.text.lower()
        if not _may_ask(lowered, _WORD.findall(lowered)):
            counts.setdefault(turn.speaker, 0)
            continue
        asked = sum(is_question(sentence) for sentence in _SENTENCE_SPLIT.split(turn.text) if sentence.strip())
        counts[turn.speaker] = counts.get(turn.speaker, 0) + asked
    return counts


def _word_backed(activity: dict[str, list[Interval]], spans: dict[str, list[Interval]]) -> dict[str, list[Interval]]:
    """Keep the activity intervals in which the speaker said at least one recognised word (not a cough); `spans`
    are each speaker's word spans."""
    kept: dict[str, list[Interval]] = {}
    for speaker, intervals in activity.items():
        starts, reach = _reach(spans.get(speaker, []))
        # A word overlaps (start, end) when it starts before `end` and ends after `start`.
        kept[speaker] = [(start, end) for start, end in intervals
                         if (latest := _latest_end_before(starts, reach, end)) is not None and latest > start]
    return kept


def compute_metrics(words: list[Word], turns: list[Turn], options: MetricsOptions | None = None, *,
                    activity: dict[str, list[Interval]] | None = None) -> Metrics:
    """The conversation metrics of one call.

    Args:
        words: attributed words in time order.
        turns: the turns built from them.
        options: thresholds.
        activity: per speaker, when they were audibly speaking (stereo: each leg's voice activity). Overlaps
            and interruptions are measured on it when given, since a transcript lists words one after another
            even when two people talk at once; otherwise on the words' own spans.
    """
    return compute_metrics_and_talk(words, turns, options, activity=activity)[0]


def compute_metrics_and_talk(words: list[Word], turns: list[Turn], options: MetricsOptions | None = None, *,
                             activity: dict[str, list[Interval]] | None = None) -> tuple[Metrics, dict[str, float]]:
    """`compute_metrics`, and the seconds of talk per speaker it measured on the way (`talk_by_speaker`), which
    a result lists too: derive() asks once instead of merging every word span twice."""
    options = options or MetricsOptions()
    spans = _spans_by_speaker(words)
    intervals = {speaker: _merge(own, options.fill_gap_s) for speaker, own in spans.items()}
    overlapping = _word_backed(activity, spans) if activity is not None else intervals
    speaker_role: dict[str, Role] = {}
    words_by_speaker: dict[str, float] = {}
    for word in words:
        speaker_role.setdefault(word.speaker, word.role)
    for speaker, own in spans.items():
        words_by_speaker[speaker] = len(own)
    known = roles_known(words)

    talk_per_speaker = {speaker: _length(own) for speaker, own in intervals.items()}
    everyone = _merge(span for spans in intervals.values() for span in spans)
    total_talk = _length(everyone)
    conversation = (everyone[-1][1] - everyone[0][0]) if everyone else 0.0
    pauses = [next_start - end for (_, end), (next_start, _) in zip(everyone, everyone[1:])]
    speakers = list(overlapping)
    overlap = sum(_overlap_length(overlapping[a], overlapping[b])
                  for i, a in enumerate(speakers) for b in speakers[i + 1:])

    def per_role(values: Mapping[str, float], combine=sum) -> dict[str, float | None]:
        if not known:
            return {"manager": None, "client": None}
        result: dict[str, float | None] = {}
        for role in ("manager", "client"):
            own = [value for speaker, value in values.items() if speaker_role.get(speaker) == role]
            result[role] = combine(own) if own else 0.0
        return result

    talk = per_role(talk_per_speaker)
    monologue_by_speaker: dict[str, float] = {}
    for speaker, duration in _monologues(words, options.monologue_max_pause_s):
        monologue_by_speaker[speaker] = max(duration, monologue_by_speaker.get(speaker, 0.0))
    word_counts = per_role(words_by_speaker)
    rates = {}
    for role in ("manager", "client"):
        seconds, count = talk[role], word_counts[role]
        rates[role] = (round(count / seconds * 60, 1) if seconds is not None and count is not None
                       and seconds >= options.min_talk_for_rate_s else None)
    manager_talk, client_talk = talk["manager"], talk["client"]
    ratio = None
    if manager_talk is not None and client_talk is not None and manager_talk + client_talk > 0:
        ratio = round(manager_talk / (manager_talk + client_talk), 4)

    def rounded(values: dict[str, float | None], digits: int = 2) -> dict[str, float | None]:
        return {role: None if value is None else round(value, digits) for role, value in values.items()}

    def counted(values: dict[str, float | None]) -> dict[str, int | None]:
        return {role: None if value is None else int(value) for role, value in values.items()}

    return (Metrics(
        talk_ratio_manager=ratio,
        manager_talk_s=None if manager_talk is None else round(manager_talk, 2),
        client_talk_s=None if client_talk is None else round(client_talk, 2),
        total_talk_s=round(total_talk, 2),
        silence_s=round(max(0.0, conversation - total_talk), 2),
        long_silences=sum(pause >= options.long_silence_s for pause in pauses),
        overlap_s=round(overlap, 2),
        longest_monologue_s=PerRole(**rounded(per_role(monologue_by_speaker, max))),
        interruptions=PerRoleCount(**counted(per_role(_interruptions(overlapping,
                                                                      options.interruption_min_overlap_s)))),
        speech_rate_wpm=PerRole(**rates),
        questions=PerRoleCount(**counted(per_role(_questions(turns)))),
    ), talk_per_speaker)
