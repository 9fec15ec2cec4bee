"""Turns and conversation metrics on hand-built words (pure logic; figures computed by hand)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipeline import metrics
from pipeline.metrics import MetricsOptions, compute_metrics, is_question
from pipeline.schema import Turn, Word
from pipeline.turns import build_turns


def w(start: float, end: float, text: str, role: str = "manager") -> Word:
    speaker = {"manager": "left", "client": "right", "unknown": "mixed"}[role]
    return Word(start=start, end=end, text=text, speaker=speaker, role=role, prob=0.9)


DATA = Path(__file__).parent / "data" / "calls"

CALL = [
    w(0.0, 0.5, "Добрый"), w(0.5, 1.0, "день!"), w(1.2, 1.6, "Удобно"), w(1.6, 2.0, "говорить?"),
    w(2.5, 3.0, "Да.", "client"),
    w(3.5, 4.0, "Какой"), w(4.0, 4.5, "объём"), w(4.5, 5.0, "нужен?"),
    # the client talks over the manager's next sentence
    w(5.5, 6.0, "Нам"), w(6.0, 6.5, "нужно"), w(6.2, 6.6, "Двадцать", "client"), w(6.6, 7.0, "кубов.", "client"),
    w(6.5, 7.0, "много."),
    w(11.0, 11.5, "Спасибо", "client"),
]
CALL.sort(key=lambda word: word.start)  # the pipeline hands words over in time order


def test_turns_keep_an_interrupted_sentence_whole() -> None:
    turns = build_turns(CALL)
    assert [(t.role, t.text) for t in turns] == [
        ("manager", "Добрый день! Удобно говорить?"),
        ("client", "Да."),
        ("manager", "Какой объём нужен? Нам нужно много."),
        ("client", "Двадцать кубов."),
        ("client", "Спасибо"),  # 4 s of silence before it: a new turn
    ]
    assert (turns[2].start, turns[2].end) == (3.5, 7.0)


def test_a_word_inside_the_pause_takes_the_floor() -> None:
    words = [w(0, 1, "Алло"), w(1.2, 1.4, "Да", "client"), w(1.6, 2.0, "Слушаю")]
    assert [t.text for t in build_turns(words)] == ["Алло", "Да", "Слушаю"]


def test_metrics_by_hand() -> None:
    metrics = compute_metrics(CALL, build_turns(CALL), MetricsOptions())
    # manager words merge (gaps <= 1 s) into 0.0-2.0 and 3.5-7.0 (the 1.5 s pause splits) -> 5.5 s
    # client: 2.5-3.0, 6.2-7.0, 11.0-11.5 -> 1.8 s
    assert metrics.manager_talk_s == 5.5
    assert metrics.client_talk_s == 1.8
    assert metrics.talk_ratio_manager == pytest.approx(5.5 / 7.3, abs=1e-4)
    # union of all talk: 0-2, 2.5-3, 3.5-7, 11-11.5 = 6.5; conversation 0-11.5 -> silence 5.0
    assert metrics.total_talk_s == 6.5
    assert metrics.silence_s == 5.0
    assert metrics.long_silences == 1  # 7.0 -> 11.0
    assert metrics.overlap_s == pytest.approx(0.8)
    assert (metrics.interruptions.manager, metrics.interruptions.client) == (0, 1)
    # monologues: manager 0-2 (2 s), then 3.5-6.5 until the client's word -> 3 s; client: "Да." 0.5 s,
    # "Двадцать" 0.4 s (cut by "много."), "кубов." 0.4 s (then 4 s of silence, more than 3 s, ends it)
    assert metrics.longest_monologue_s.manager == 3.0
    assert metrics.longest_monologue_s.client == 0.5
    # 10 manager words in 5.5 s -> 109.1 wpm; the client's 1.8 s is under the 2 s minimum -> null
    assert metrics.speech_rate_wpm.manager == 109.1
    assert metrics.speech_rate_wpm.client is None
    assert (metrics.questions.manager, metrics.questions.client) == (2, 0)


def test_activity_intervals_drive_overlap_when_given() -> None:
    words = [w(0, 2, "Примерно"), w(2, 3, "час."), w(3.2, 3.6, "Угу", "client")]
    activity = {"left": [(0.0, 3.0)], "right": [(1.0, 1.4), (2.4, 3.6)]}  # (1.0, 1.4): a cough, no word
    metrics = compute_metrics(words, build_turns(words), activity=activity)
    assert metrics.overlap_s == pytest.approx(0.6)
    assert (metrics.interruptions.manager, metrics.interruptions.client) == (0, 1)


def test_unknown_roles_give_no_per_role_figures() -> None:
    words = [w(0, 1, "Алло", "unknown"), w(1.5, 2.5, "Слушаю", "unknown")]
    metrics = compute_metrics(words, build_turns(words))
    assert metrics.talk_ratio_manager is None and metrics.manager_talk_s is None
    assert metrics.questions.manager is None and metrics.interruptions.client is None
    assert metrics.total_talk_s == 2.5


def test_no_words_at_all() -> None:
    metrics = compute_metrics([], [])
    assert metrics.total_talk_s == 0.0 and metrics.silence_s == 0.0 and metrics.talk_ratio_manager is None


@pytest.mark.parametrize(("sentence", "asked"), [
    ("Вам удобно говорить?", True),
    ("Подскажите, какой объём вам нужен.", True),  # Whisper dropped the question mark
    ("А сколько займёт по времени", True),
    ("Удобно ли вам сейчас", True),
    ("Как бы это сказать, дорого.", True),  # a filler that looks like a question: counted (documented limit)
    ("Доставка стоит сто восемьдесят тысяч.", False),
    ("Хорошо, давайте так.", False),
])
def test_questions(sentence: str, asked: bool) -> None:
    assert is_question(sentence) is asked


class _HoldsEveryWord:
    """Stands in for `_QUESTION_WORDS` as a set that holds every word: its quick rule then rules nothing out."""

    @staticmethod
    def isdisjoint(_words: object) -> bool:
        return False


def test_the_quick_question_rule_rules_out_only_sentences_that_ask_nothing(monkeypatch) -> None:
    # The sample calls' scripts (without their question marks too, as Whisper often writes them), and each word
    # the rules react to at the start of a sentence, after an addressing opener, after "не" and as a tag.
    scripts = [utterance["text"] for path in sorted(DATA.glob("*.truth.json"))
               for utterance in json.loads(path.read_text(encoding="utf-8"))["utterances"]]
    sentences = [sentence for text in scripts for sentence in re.split(r"(?<=[.!?…])\s+", text)]
    sentences += [sentence.replace("?", ".") for sentence in sentences]
    tags = re.search(r"\(\?:(.*?)\)", metrics._TAG.pattern).group(1).split("|")
    words = sorted(metrics._INTERROGATIVES | metrics._REQUESTS | metrics._OPENERS | metrics._NEGATED_REQUESTS)
    sentences += [f"{word.capitalize()} вам сейчас говорить" for word in words]
    sentences += [f"Меня зовут Алексей, вам {word} сейчас" for word in words]
    sentences += [f"Не {word} мне время" for word in words]
    sentences += [f"Вы были у нас вчера, {tag}." for tag in tags] + [f"Вчера, {tag}." for tag in tags]
    sentences += ["Алло?", "Сорок тысяч?", "Здравствуйте, чем могу помочь."]  # no question word
    # ... and per turn (`_questions` rules out a whole turn at once): each utterance as a turn of its own speaker
    turns = [Turn(start=0.0, end=1.0, speaker=speaker, role="manager", text=text)
             for index, text in enumerate(scripts + [text.replace("?", ".") for text in scripts] + sentences)
             for speaker in [f"S{index % 7}"]]
    quick = [is_question(sentence) for sentence in sentences]
    counted = metrics._questions(turns)
    monkeypatch.setattr(metrics, "_QUESTION_WORDS", _HoldsEveryWord())
    assert [is_question(sentence) for sentence in sentences] == quick
    assert metrics._questions(turns) == counted
    assert 0.2 < sum(quick) / len(quick) < 0.8  # both answers are exercised
