"""The workbench's lexicon page (pipeline/lexicon/edit.py): try a phrase, check and preview an edit on stored
calls (the sample calls' scripts as stored transcripts, no ASR), save it with its history."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipeline.lexicon import DEFAULT_LEXICONS, load_lexicons
from pipeline.lexicon.compiled import cache_folder
from pipeline.lexicon.edit import (
    EditProblem,
    LexiconEditError,
    explain_phrase,
    lexicon_history,
    list_lexicon_files,
    preview_lexicon_edit,
    read_lexicon,
    save_lexicon,
)
from pipeline.schema import AsrModelInfo, ModelInfo, SourceInfo, SpeakerModelInfo
from pipeline.transcript import SpokenWord, Transcript, TranscriptSpeaker, read_transcript
from tests.conftest import SAMPLE_CALLS, SampleCall, script_words

SHIPPED = load_lexicons(DEFAULT_LEXICONS)
NOW = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)
MODEL = ModelInfo(asr=AsrModelInfo(name="whisper-base", engine="faster-whisper", engine_version="1.2.1",
                                   model_sha256=None, device="cpu", compute_type="int8", batch_size=8, beam_size=5),
                  speakers=SpeakerModelInfo(name="channels", version="mix/1"))
# "Добрый день" dropped from the greeting: the calls that greet so lose their greeting criterion.
NO_GOOD_DAY = ('"добрый день", ', "")


def _stored(call: SampleCall) -> Transcript:
    """The call's script as a stored stereo transcript (manager on the left leg), read back from its JSON."""
    legs = {"manager": "left", "client": "right"}
    transcript = Transcript(
        call_id=call.call_id, source=SourceInfo(uri=f"{call.call_id}.mp3", sha256="0" * 64, size_bytes=1,
                                                container="mp3", codec="mp3", sample_rate_hz=8000, channels=2),
        duration_s=call.duration_s, channels=2, layout="stereo", layout_reason="stereo", language="ru",
        direction=call.direction, manager_channel=0, separation="channels", model=MODEL,
        speakers=[TranscriptSpeaker(id="left", channel=0), TranscriptSpeaker(id="right", channel=1)],
        words=[SpokenWord(start=w.start, end=w.end, text=w.text, speaker=legs[w.role], prob=1.0)
               for w in script_words(call)],
        analyzed_at="2026-12-03T10:00:00+00:00", callqa_version="0.1.0")
    return read_transcript(transcript.to_json())


@pytest.fixture(scope="module")
def stored_calls() -> dict[str, Transcript]:
    return {call.call_id: _stored(call) for call in SAMPLE_CALLS}


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """A copy of the shipped lexicons (with scorecards/ and schema/), to edit."""
    copy = tmp_path / "lexicons"
    shutil.copytree(DEFAULT_LEXICONS, copy, ignore=shutil.ignore_patterns(".history"))
    return copy


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under the folder's parent (the folder, its history, anything a traversal could reach)."""
    return {str(p.relative_to(folder.parent)): p.read_bytes() for p in sorted(folder.parent.rglob("*"))
            if p.is_file()}


def test_explain_a_phrase_gives_lemmas_and_each_hit() -> None:
    explanation = explain_phrase(SHIPPED, "У конкурента дешевле. Стамутология")
    assert [(w.surface, w.lemma) for w in explanation.words][:2] == [("у", "у"), ("конкурента", "конкурент")]
    # "у конкурентов" is written in the plural: "у конкурента" matches by lemma only.
    hit = next(h for h in explanation.hits if (h.lexicon, h.term) == ("objections", "competitors"))
    assert hit.phrase == "у конкурентов" and hit.words == ("у", "конкурента") and (hit.first, hit.last) == (0, 1)
    assert hit.match == "lemma" and hit.similarity == 1.0 and hit.note == ""
    assert hit.speaker == "client" and hit.title == "Работаем с другими" and hit.window is None
    # A misheard company word matches only by the term's tolerance, and says so.
    fuzzy = next(h for h in explanation.hits if (h.lexicon, h.term) == ("greeting", "company"))
    assert fuzzy.match == "fuzzy" and 0.8 <= fuzzy.similarity < 1.0 and fuzzy.note.startswith("нечётко 0.")
    assert fuzzy.words == ("стамутология",) and explanation.words[fuzzy.first].surface == "стамутология"
    assert fuzzy.speaker == "manager"
    # Negation cancels the price objection: nothing of objections/price in "это не дорого".
    assert not [h for h in explain_phrase(SHIPPED, "Это не дорого").hits if h.term == "price"]


@pytest.mark.parametrize(("text", "expected"), [
    ('lexicon: farewell\ntitle: Прощание\nterms:\n  - id: goodbye\n    phrases: ["до свидания", "всего"\n',
     [("farewell.yaml", 6, "not valid YAML")]),
    ("lexicon: farewell\ntitle: Прощание\nspeaker: boss\nterms:\n  - id: goodbye\n    phrase: [пока]\n",
     [("farewell.yaml", 3, "speaker: Input should be 'manager', 'client' or 'any'"),
      ("farewell.yaml", 5, "terms[0].phrases: Field required"),
      ("farewell.yaml", 6, "terms[0].phrase: Extra inputs are not permitted")]),
])
def test_a_broken_edit_gives_file_and_line_and_writes_nothing(folder: Path, stored_calls, text: str,
                                                              expected: list) -> None:
    before = _snapshot(folder)
    preview = preview_lexicon_edit(folder, "farewell.yaml", text, stored_calls.items())
    assert [(e.file, e.line) for e in preview.errors] == [(file, line) for file, line, _ in expected]
    assert all(message in e.message for e, (_, _, message) in zip(preview.errors, expected, strict=True))
    assert preview.diffs == () and preview.version_after is None and preview.version_before == SHIPPED.version
    with pytest.raises(LexiconEditError) as refused:
        save_lexicon(folder, "farewell.yaml", text, author="olga", now=NOW)
    assert list(refused.value.problems) == list(preview.errors)
    assert str(refused.value).startswith(f"farewell.yaml:{expected[0][1]}: ")
    assert _snapshot(folder) == before and not (folder / ".history").exists()


def test_an_edit_is_previewed_on_stored_calls(folder: Path, stored_calls) -> None:
    text = read_lexicon(folder, "greeting.yaml")
    edited = text.replace(*NO_GOOD_DAY)
    assert edited != text
    before = _snapshot(folder)
    calls = [("crm-1", stored_calls["stroymat"], ()), ("crm-2", stored_calls["furniture"])]
    preview = preview_lexicon_edit(folder, "greeting.yaml", edited, calls)
    assert preview.errors == () and preview.version_before == SHIPPED.version != preview.version_after
    assert [d.call_id for d in preview.diffs] == ["crm-1", "crm-2"]
    stroymat, furniture = preview.diffs
    # stroymat's greeting hit was "Добрый день!": without the phrase its greeting criterion is no longer met.
    assert [(h.lexicon, h.term, h.text) for h in stroymat.lost] == [("greeting", "hello", "Добрый день!")]
    assert stroymat.gained == [] and ("greeting", "met", "not_met") in stroymat.flipped
    assert stroymat.total_after < stroymat.total_before
    # furniture says "Здравствуйте": unchanged.
    assert not furniture.changed and preview.changed == (stroymat,)
    assert _snapshot(folder) == before
    # The temporary copy an edit is checked in is not kept compiled (it would only fill the cache).
    cache = cache_folder()
    kept = set(cache.glob("*.pickle")) if cache else set()
    preview_lexicon_edit(folder, "greeting.yaml", edited.replace("доброе утро", "утро доброе"), [])
    assert (set(cache.glob("*.pickle")) if cache else set()) == kept


def test_an_edit_that_breaks_another_file_or_the_scorecard_is_refused(folder: Path) -> None:
    # company/name is included by greeting/company: renaming it breaks greeting.yaml, not company.yaml.
    company = read_lexicon(folder, "company.yaml").replace("- id: name", "- id: names")
    preview = preview_lexicon_edit(folder, "company.yaml", company, [])
    assert [(e.file, "company/name" in e.message) for e in preview.errors] == [("greeting.yaml", True)]
    # The scorecard's greeting criterion needs greeting/hello.
    greeting = read_lexicon(folder, "greeting.yaml").replace("- id: hello", "- id: hi")
    scorecard = folder / "scorecards" / "sales.yaml"
    line = next(n for n, row in enumerate(scorecard.read_text(encoding="utf-8").splitlines(), 1)
                if "term: hello" in row)
    preview = preview_lexicon_edit(folder, "greeting.yaml", greeting, [], scorecard=scorecard)
    assert [(e.file, e.line) for e in preview.errors] == [("scorecards/sales.yaml", line)]
    assert "has no term 'hello'" in preview.errors[0].message
    with pytest.raises(LexiconEditError):
        save_lexicon(folder, "greeting.yaml", greeting, author="olga", now=NOW, scorecard=scorecard)
    assert "- id: hello" in read_lexicon(folder, "greeting.yaml")


def test_a_file_broken_before_does_not_block_mending_another(folder: Path) -> None:
    (folder / "zz.yaml").write_text("title: Z\nterms: []\n", encoding="utf-8")
    farewell = read_lexicon(folder, "farewell.yaml").replace('"ждём вас"', '"ждём вас", "до скорого"')
    preview = preview_lexicon_edit(folder, "farewell.yaml", farewell, [])
    assert preview.errors == () and preview.version_before is None and preview.diffs == ()
    assert [(e.file, e.line) for e in preview.other_errors] == [("zz.yaml", 2)]
    saved = save_lexicon(folder, "farewell.yaml", farewell, author="olga", now=NOW)
    assert saved.lexicon_version is None and saved.other_errors == preview.other_errors
    assert read_lexicon(folder, "farewell.yaml") == farewell
    # ... but the broken file itself must be mended to be saved.
    with pytest.raises(LexiconEditError) as refused:
        save_lexicon(folder, "zz.yaml", "title: Z\nterms: [{id: a}]\n", author="olga", now=NOW)
    assert [problem.file for problem in refused.value.problems] == ["zz.yaml"]


def test_save_keeps_the_previous_version_and_the_new_file_loads(folder: Path) -> None:
    path = folder / "greeting.yaml"
    original = path.read_bytes()
    edited = original.decode("utf-8").replace(*NO_GOOD_DAY)
    preview = preview_lexicon_edit(folder, "greeting.yaml", edited, [])
    saved = save_lexicon(folder, "greeting.yaml", edited, author="Ольга Петрова / admin", now=NOW)
    assert saved.path == path and path.read_text(encoding="utf-8") == edited
    assert saved.previous == folder / ".history" / "greeting.20261203T100000Z.Ольга_Петрова_admin.yaml"
    assert saved.previous.read_bytes() == original
    loaded = load_lexicons(folder)
    assert loaded.version == saved.lexicon_version == preview.version_after
    hello = next(term for term in loaded.lexicons["greeting"].terms if term.id == "hello")
    assert "добрый день" not in hello.phrases and "здравствуйте" in hello.phrases
    assert [p.name for p in list_lexicon_files(folder)] == sorted(p.name for p in DEFAULT_LEXICONS.glob("*.yaml"))

    # The same second again, another author: a second history entry, newest first; the same text: nothing.
    again = edited.replace('"доброе утро", ', "")
    second = save_lexicon(folder, "greeting.yaml", again, author="../root",
                          now=NOW.astimezone(timezone(timedelta(hours=3))))  # stored as UTC
    assert second.previous is not None and second.previous.name == "greeting.20261203T100000Z-2.root.yaml"
    assert second.previous.read_text(encoding="utf-8") == edited
    unchanged = save_lexicon(folder, "greeting.yaml", again, author="olga", now=NOW + timedelta(minutes=1))
    assert unchanged.previous is None
    history = lexicon_history(folder, "greeting.yaml")
    assert [(e.path, e.author, e.replaced_at) for e in history] == [
        (second.previous, "root", NOW), (saved.previous, "Ольга_Петрова_admin", NOW)]
    assert lexicon_history(folder, "farewell.yaml") == []
    with pytest.raises(ValueError, match="timezone"):
        save_lexicon(folder, "greeting.yaml", edited, author="olga", now=datetime(2026, 12, 3))


@pytest.mark.parametrize("name", ["../greeting.yaml", "../../evil.yaml", "/tmp/evil.yaml", "scorecards/sales.yaml",
                                  "schema/x.yaml", ".history.yaml", ".yaml", "x.yml", "x.json", "x", "",
                                  "a\\..\\b.yaml", " greeting.yaml", "x\0.yaml"])
def test_names_outside_the_folder_or_not_yaml_are_refused(folder: Path, name: str) -> None:
    before = _snapshot(folder)
    text = read_lexicon(folder, "farewell.yaml")
    with pytest.raises(LexiconEditError) as refused:
        save_lexicon(folder, name, text, author="olga", now=NOW)
    assert [(p.file, p.line) for p in refused.value.problems] == [(name, 0)]
    preview = preview_lexicon_edit(folder, name, text, [])
    assert preview.errors == tuple(refused.value.problems) and preview.diffs == ()
    with pytest.raises(LexiconEditError):
        lexicon_history(folder, name)
    assert _snapshot(folder) == before


def test_a_link_in_the_folder_is_not_followed(folder: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("secret\n", encoding="utf-8")
    (folder / "link.yaml").symlink_to(outside)
    with pytest.raises(LexiconEditError) as refused:
        read_lexicon(folder, "link.yaml")
    assert refused.value.problems == [EditProblem("link.yaml", 0, "not a plain file in the lexicon folder")]
    with pytest.raises(LexiconEditError):
        save_lexicon(folder, "link.yaml", read_lexicon(folder, "farewell.yaml"), author="olga", now=NOW)
    assert outside.read_text(encoding="utf-8") == "secret\n" and "link.yaml" not in {
        p.name for p in list_lexicon_files(folder)}
