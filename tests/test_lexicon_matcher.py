"""The lexicon matcher on Russian word forms, wildcards, gaps, exclusions, windows and speakers (pure logic)."""

from __future__ import annotations

import pytest

from pipeline.lexicon.matcher import Matcher
from pipeline.lexicon.model import LexiconFile
from pipeline.schema import Word
from pipeline.turns import build_turns


def matcher(*terms: dict, speaker: str = "any", **lexicon) -> Matcher:
    return Matcher({"test": LexiconFile(title="Тест", speaker=speaker, terms=list(terms), **lexicon)})


def term(phrases: list, **options) -> dict:
    return {"id": "t", "phrases": phrases, **options}


@pytest.mark.parametrize(("phrase", "text"), [
    ("скидка", "Скидки есть?"),
    ("скидка", "без скидок не купим"),
    ("скидка", "со СКИДКОЙ пять процентов"),
    ("договор", "пришлю договоры на почту"),
    ("записать", "Записала вас на завтра"),
    ("записать", "я вас запишу"),
    ("удобно говорить", "Вам удобно говорить?"),
    ("двадцать кубов", "нужно 20 кубов бетона"),
    ("двадцать кубов", "Доставка двадцати кубов"),
    ("20 кубов", "двадцать кубов на фундамент"),
    ("сто восемьдесят тысяч", "это 180 тысяч рублей"),
    ("ещё", "Что-нибудь еще?"),
    ("елка", "Ёлки зелёные"),
    ("интернет-провайдер", "Ваш интернет провайдер"),
    ("подешевле", "Короче, нам надо ПОДЕШЕВЛЕ!"),
])
def test_word_forms_match(phrase: str, text: str) -> None:
    assert matcher(term([phrase])).matches_text(text, "test", "t")


@pytest.mark.parametrize(("phrase", "text"), [
    ("скидка", "склад"),
    ("двадцать кубов", "двадцать пять кубов"),  # a word in between, and no gap allowed
    ("удобно говорить", "говорить удобно"),  # order matters
    ("договор", "договориться"),
])
def test_other_words_do_not_match(phrase: str, text: str) -> None:
    assert not matcher(term([phrase])).matches_text(text, "test", "t")


def test_gap_allows_words_inside_a_phrase() -> None:
    assert matcher(term(["удобно говорить"], gap=1)).matches_text("удобно сейчас говорить", "test", "t")
    assert not matcher(term(["удобно говорить"], gap=1)).matches_text("удобно ли вам сейчас говорить", "test", "t")
    assert matcher(term([{"text": "удобно говорить", "gap": 3}])).matches_text("удобно ли вам сейчас говорить",
                                                                                 "test", "t")


def test_wildcard_matches_any_ending() -> None:
    lexicon = matcher(term(["дорог*"]))
    for text in ("дорого", "дороговато", "Дорогая услуга", "дорогие"):
        assert lexicon.matches_text(text, "test", "t"), text
    assert not lexicon.matches_text("недорого", "test", "t")


def test_exclusions_cancel_the_hits_they_cover() -> None:
    lexicon = matcher(term(["дорого"], exclude=["не дорого", "не так дорого"], gap=1))
    assert lexicon.matches_text("Это дорого", "test", "t")
    assert not lexicon.matches_text("Это не дорого", "test", "t")
    assert not lexicon.matches_text("не так уж дорого", "test", "t")
    # an exclusion elsewhere in the phrase does not cancel a separate hit
    assert lexicon.matches_text("Доставка не дорого, а установка дорого", "test", "t")


def test_exact_matches_the_written_form_only() -> None:
    lemma, exact = matcher(term(["типа"])), matcher(term(["типа"], exact=True))
    assert lemma.matches_text("какой тип фасадов", "test", "t")  # "типа" and "тип" share the lemma
    assert not exact.matches_text("какой тип фасадов", "test", "t")
    assert exact.matches_text("ну типа скидка", "test", "t")


def w(start: float, text: str, role: str) -> Word:
    return Word(start=start, end=start + 0.4, text=text, speaker=role, role=role, prob=0.9)


CALL = [w(0.5, "Добрый", "manager"), w(1.0, "день!", "manager"), w(1.5, "Дорого", "client"),
        w(3.0, "дорого?", "manager"), w(50.0, "До", "manager"), w(50.4, "свидания.", "manager")]


def test_speaker_scope_per_lexicon_and_per_term() -> None:
    lexicon = matcher(term(["дорого"]), {"id": "bye", "phrases": ["до свидания"], "speaker": "manager"},
                      speaker="client")
    hits = lexicon.find_hits(CALL, build_turns(CALL), duration_s=52.0)
    assert [(h.term, h.role, h.start, h.text) for h in hits] == [
        ("t", "client", 1.5, "Дорого"), ("bye", "manager", 50.0, "До свидания.")]


def test_time_windows() -> None:
    first = matcher(term(["добрый день"], within={"first_s": 10}), {"id": "bye", "phrases": ["до свидания"],
                                                                     "within": {"first_s": 10}})
    assert [h.term for h in first.find_hits(CALL, build_turns(CALL), 52.0)] == ["t"]
    last = matcher(term(["до свидания"], within={"last_s": 5}))
    assert [h.start for h in last.find_hits(CALL, build_turns(CALL), 52.0)] == [50.0]
    assert last.find_hits(CALL, build_turns(CALL), 80.0) == []


def test_phrases_do_not_cross_speakers() -> None:
    words = [w(0.0, "добрый", "manager"), w(0.5, "день", "client")]
    assert matcher(term(["добрый день"])).find_hits(words, build_turns(words), 2.0) == []


def test_hits_record_the_turn_and_phrase() -> None:
    hits = matcher(term(["дорого"])).find_hits(CALL, turns := build_turns(CALL), 52.0)
    assert [(h.turn, h.phrase) for h in hits] == [(1, "дорого"), (2, "дорого")]
    assert turns[hits[0].turn].role == "client"


def test_overlapping_phrases_of_one_term_make_one_hit() -> None:
    hits = matcher(term(["дорого", "очень дорого"])).find_hits(
        [w(0, "очень", "client"), w(0.5, "дорого", "client")], build_turns([w(0, "очень", "client"),
                                                                          w(0.5, "дорого", "client")]), 2.0)
    assert [(h.text, h.phrase) for h in hits] == [("очень дорого", "очень дорого")]


def test_unknown_roles_still_show_hits_of_role_scoped_terms() -> None:
    words = [Word(start=0, end=0.5, text="Дорого", speaker="mixed", role="unknown", prob=1.0)]
    hits = matcher(term(["дорого"]), speaker="client").find_hits(words, build_turns(words), 2.0)
    assert [(h.term, h.role) for h in hits] == [("t", "unknown")]


# Recognition-tolerant matching. Heard -> meant: whisper-base's own mis-hearings of the sample calls.
MISHEARD = [
    ("Стамутология, улыбка", "стоматология"),
    ("Авта -сервис Мотор", "автосервис"),
    ("Это Ольга Искомпании Мибельград", "из компании"),
    ("Мибельград", "мебельград"),
    ("вы были у нас на консультации?", "вы уже были"),
    ("Добрый день, компонесторы, база.", "компания стройбаза"),  # two words heard cut elsewhere
    ("монтажник приедет средут", "среду"),  # one letter in six
]


@pytest.mark.parametrize(("heard", "meant"), MISHEARD)
def test_a_fuzzy_term_matches_what_the_recogniser_misheard(heard: str, meant: str) -> None:
    assert not matcher(term([meant])).matches_text(heard, "test", "t")  # exact matching misses it
    hit = matcher(term([meant], fuzzy=True)).match_text(heard, "test", "t")
    assert hit is not None and hit.fuzzy and 0.8 <= hit.similarity <= 1.0


@pytest.mark.parametrize(("heard", "meant"), [
    ("дым", "дом"),                      # short words stay exact
    ("это не дорого", "это дорого"),      # a negation is never a missing word
    ("компот", "компания"),
    ("консультант", "консультация"),
    ("вы у нас были", "вы уже были"),     # a missing word, but the order differs
    ("доставка", "дорог*"),              # wildcards stay exact
    ("вы были", "вы были уже"),          # only a word inside the phrase may be missing
    ("подумаю", "подумать над этим"),
    ("компоненты базы", "компания стройбаза"),
    ("компания строймаркет", "компания стройбаза"),
    ("тариф Бизнес сто, это сто мегабит", "стоит"),  # two words heard clearly as such: not one misheard word
])
def test_a_fuzzy_term_does_not_match_what_it_must_not(heard: str, meant: str) -> None:
    assert not matcher(term([meant], fuzzy=True)).matches_text(heard, "test", "t")


def test_the_threshold_and_where_fuzzy_is_set() -> None:
    # `fuzzy: true` is 0.8, as the lexicon contract says: one letter wrong in five
    assert matcher(term(["замер"], fuzzy=True)).matches_text("зимер", "test", "t")
    assert not matcher(term(["замер"], fuzzy=0.85)).matches_text("зимер", "test", "t")
    assert matcher(term(["стоматология"], fuzzy=0.9)).matches_text("стамутология", "test", "t")  # 0.909
    assert not matcher(term(["стоматология"], fuzzy=0.95)).matches_text("стамутология", "test", "t")
    assert matcher(term(["стоматология"]), fuzzy=True).matches_text("стамутология", "test", "t")  # the file's
    assert not matcher(term(["стоматология"], fuzzy=False), fuzzy=True).matches_text("стамутология", "test", "t")
    spec = {"text": "стоматология", "fuzzy": False}
    assert not matcher(term([spec], fuzzy=True)).matches_text("стамутология", "test", "t")


def test_an_exact_match_wins_and_reads_as_lemma() -> None:
    words = [Word(start=0.0, end=0.5, text="Стоматология,", speaker="a", role="manager", prob=0.9),
             Word(start=0.6, end=1.0, text="улыбка.", speaker="a", role="manager", prob=0.9),
             Word(start=5.0, end=5.5, text="Стамутология", speaker="a", role="manager", prob=0.5)]
    hits = matcher(term(["стоматология"], fuzzy=True)).find_hits(words, build_turns(words), 6.0)
    assert [(hit.start, hit.match, hit.similarity, hit.missing) for hit in hits] == [
        (0.0, "lemma", 1.0, None), (5.0, "fuzzy", 0.909, None)]


def test_a_fuzzy_exclusion_cancels_a_misheard_negation() -> None:
    lexicon = matcher(term(["дорого"], exclude=["не дорого"], fuzzy=True))
    assert lexicon.matches_text("это дорага", "test", "t")
    assert not lexicon.matches_text("это не дорага", "test", "t")


def test_an_included_term_s_phrases_count_as_the_including_term_s_with_their_own_options() -> None:
    names = LexiconFile(title="Компания", fuzzy=True, terms=[{"id": "name", "phrases": ["мебельград"]}])
    greeting = LexiconFile(title="Приветствие", speaker="manager",
                           terms=[{"id": "company", "phrases": ["компания"], "include": ["company/name"]}])
    both = Matcher({"company": names, "greeting": greeting})
    assert both.match_text("Это Ольга, Мибельград", "greeting", "company").fuzzy  # the name's fuzzy option
    assert both.matches_text("Это Ольга, Мибельград", "company", "name")
    assert not both.matches_text("кампания", "greeting", "company")  # the greeting's own phrases stay exact


@pytest.mark.parametrize(("heard", "meant"), [
    ("очень интересно", "неинтересно"),
    ("очень интересно", "не интересно"),
    ("это удобно", "неудобно"),
    ("форму", "фирма"),                  # one letter that changes the sound of a five-letter word
])
def test_a_fuzzy_term_never_loses_a_negation_or_a_first_sound(heard: str, meant: str) -> None:
    assert not matcher(term([meant], fuzzy=True)).matches_text(heard, "test", "t")
