"""Personal data out of what leaves callqa for the CRM: phone, card, passport, СНИЛС and ИНН numbers and e-mail
addresses in Russian text, written as digits or as the number words a recogniser produces ("восемь девятьсот
пятнадцать сто двадцать три ...").

Amounts of money stay ("сто восемьдесят тысяч рублей", "45 000 ₽"): what makes a number personal here is its
length (seven digits and more) and that it is not followed by a currency or a thousands word.
"""

from __future__ import annotations

import re

__all__ = ["redact", "redact_words"]

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
SNILS = re.compile(r"\b\d{3}[- ]?\d{3}[- ]?\d{3}[- ]\d{2}\b")
CARD = re.compile(r"\b(?:\d{4}[ -]?){3}\d{4}\b")
PHONE = re.compile(r"(?<![\d+])(?:(?:\+7|8|7)[ \-]*)?\(?\d{3}\)?[ \-]*\d{3}[ -]?\d{2}[ -]?\d{2}(?![\d])")
INN = re.compile(r"(?<=ИНН)(?:[:\s№]*)\d{10}(?:\d{2})?\b", re.IGNORECASE)
PASSPORT = re.compile(r"\b\d{2} ?\d{2} ?(?:№ ?)?\d{6}\b")
LONG_DIGITS = re.compile(r"(?<![\d])\d(?:[ -]?\d){6,}(?![\d])")
MONEY_AFTER = re.compile(r"^\s*(?:руб|р\.|₽|тыс|тысяч|млн|миллион|долл|\$|евро|€|процент|%)", re.IGNORECASE)

NUMBER_WORDS = frozenset("""ноль нуль один одна два две три четыре пять шесть семь восемь девять десять одиннадцать
двенадцать тринадцать четырнадцать пятнадцать шестнадцать семнадцать восемнадцать девятнадцать двадцать тридцать
сорок пятьдесят шестьдесят семьдесят восемьдесят девяносто сто двести триста четыреста пятьсот шестьсот семьсот
восемьсот девятьсот плюс""".split())
WORD = re.compile(r"[а-яёa-z]+|\d+", re.IGNORECASE)
MIN_NUMBER_WORDS = 5


def _replace(pattern: re.Pattern, label: str, text: str, *, money_check: bool = False) -> str:
    def substitute(match: re.Match) -> str:
        if money_check and MONEY_AFTER.match(text[match.end():]):
            return match.group(0)
        return label

    return pattern.sub(substitute, text)


def _redact_number_words(text: str) -> str:
    """Runs of at least five number words or digit groups (a number dictated word by word)."""
    tokens = list(WORD.finditer(text))
    spans = []
    run: list[re.Match] = []
    for token in [*tokens, None]:
        if token is not None:
            word = token.group(0).lower().replace("ё", "е")
            if word in NUMBER_WORDS or word.isdigit():
                run.append(token)
                continue
        if len(run) >= MIN_NUMBER_WORDS and not (token and MONEY_AFTER.match(text[run[-1].end():])):
            spans.append((run[0].start(), run[-1].end()))
        run = []
    for start, end in reversed(spans):
        text = text[:start] + "[номер скрыт]" + text[end:]
    return text


def redact(text: str) -> str:
    """`text` with personal numbers and e-mail addresses replaced by placeholders in Russian."""
    text = _replace(EMAIL, "[e-mail скрыт]", text)
    text = _replace(SNILS, "[СНИЛС скрыт]", text)
    text = _replace(CARD, "[номер карты скрыт]", text)
    text = _replace(INN, " [ИНН скрыт]", text)
    text = _replace(PHONE, "[телефон скрыт]", text, money_check=True)
    text = _replace(PASSPORT, "[номер документа скрыт]", text, money_check=True)
    text = _replace(LONG_DIGITS, "[номер скрыт]", text, money_check=True)
    return _redact_number_words(text)


def redact_words(words: list) -> list:
    """Words (pipeline.schema.Word) with every word that is part of personal data replaced by a placeholder.

    Numbers span several recognised words ("+7", "915", "123-45-67"), so the redaction runs on each speaker's
    run of words joined together, and every word that overlaps a redacted stretch is replaced.
    """
    redacted = list(words)
    runs: list[list[int]] = []
    for index, word in enumerate(words):
        if runs and words[runs[-1][-1]].speaker == word.speaker:
            runs[-1].append(index)
        else:
            runs.append([index])
    for run in runs:
        text, spans = "", []
        for index in run:
            if text:
                text += " "
            spans.append((len(text), len(text) + len(words[index].text), index))
            text += words[index].text
        cleaned = redact(text)
        if cleaned == text:
            continue
        kept = _kept_characters(text, cleaned)
        for start, end, index in spans:
            if not all(kept[start:end]):
                redacted[index] = words[index].model_copy(update={"text": "[скрыто]"})
    return redacted


def _kept_characters(original: str, cleaned: str) -> list[bool]:
    """For each character of `original`, whether it survived into `cleaned` (placeholders replace the rest)."""
    import difflib

    kept = [False] * len(original)
    matcher = difflib.SequenceMatcher(a=original, b=cleaned, autojunk=False)
    for block in matcher.get_matching_blocks():
        for offset in range(block.size):
            kept[block.a + offset] = True
    return kept
