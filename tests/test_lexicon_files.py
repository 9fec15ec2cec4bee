"""The shipped lexicons and scorecard, their examples and schemas, and refusing broken files with file:line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import DefinitionError
from pipeline.lexicon import DEFAULT_LEXICONS, load_lexicons, run_examples
from pipeline.scoring import DEFAULT_SCORECARD, load_scorecard
from pipeline.scoring.json_schemas import schemas

CALLQA = Path(sys.executable).with_name("callqa")
SHIPPED = load_lexicons(DEFAULT_LEXICONS)
EXAMPLES = run_examples(SHIPPED)


def test_the_shipped_lexicons_cover_the_sales_script() -> None:
    assert {"greeting", "convenience", "needs", "presentation", "price", "objections", "objection_handling",
            "closing", "farewell", "politeness", "rudeness", "fillers", "competitors"} <= SHIPPED.ids
    objections = {term.id for term in SHIPPED.lexicons["objections"].terms}
    assert {"price", "think", "competitors", "not_interested"} <= objections
    fillers = " ".join(p if isinstance(p, str) else p.text for p in SHIPPED.lexicons["fillers"].terms[0].phrases)
    for filler in ("короче", "как бы", "типа", "ну это"):
        assert filler in fillers


@pytest.mark.parametrize("lexicon", sorted(SHIPPED.ids))
def test_every_shipped_term_has_examples(lexicon: str) -> None:
    for term in SHIPPED.lexicons[lexicon].terms:
        assert term.examples, f"{lexicon}/{term.id} has no examples"
        assert term.title, f"{lexicon}/{term.id} has no title"


@pytest.mark.parametrize("outcome", EXAMPLES, ids=[f"{o.lexicon}/{o.term}:{o.text}" for o in EXAMPLES])
def test_shipped_example(outcome) -> None:
    assert outcome.passed, str(outcome)


def test_the_default_scorecard_fits_the_lexicons() -> None:
    scorecard = load_scorecard(DEFAULT_SCORECARD)
    scorecard.check_against(SHIPPED)
    definition = scorecard.definition
    assert sum(criterion.weight for criterion in definition.criteria) == 100
    assert set(definition.groups) == {"standards", "communication"}
    assert {c.kind for c in definition.criteria} == {"required", "forbidden", "metric"}
    assert any(c.auto_fail for c in definition.criteria)


def test_the_shipped_json_schemas_are_current() -> None:
    for name, document in schemas().items():
        shipped = json.loads((DEFAULT_LEXICONS / "schema" / name).read_text(encoding="utf-8"))
        assert shipped == document, f"lexicons/schema/{name} is stale: run `callqa lexicon schema`"


def test_every_shipped_file_points_editors_at_its_schema() -> None:
    for path in DEFAULT_LEXICONS.glob("*.yaml"):
        assert path.read_text(encoding="utf-8").startswith("# yaml-language-server: $schema=schema/"), path


GOOD = """lexicon: objections
title: Возражения
speaker: client
terms:
  - id: price
    phrases: ["дорого"]
"""


@pytest.mark.parametrize(("name", "content", "line", "message"), [
    ("bad_yaml", "lexicon: x\ntitle: X\nterms:\n  - id: a\n    phrases: [\"дорого\"\n", 6, "not valid YAML"),
    ("unknown_field", GOOD + "    colour: red\n", 7, "terms[0].colour: Extra inputs are not permitted"),
    ("empty_phrase", GOOD.replace('["дорого"]', '["дорого", "  "]'), 6, "terms[0].phrases[1]: empty phrase"),
    ("duplicate_term", GOOD + "  - id: price\n    phrases: [\"дешевле\"]\n", 7,
     "terms[1].id: duplicate term id 'price'"),
    ("duplicate_key", GOOD.replace("speaker: client\n", "speaker: client\nspeaker: manager\n"), 4,
     "duplicate key 'speaker'"),
    ("bad_wildcard", GOOD.replace('["дорого"]', '["до*"]'), 6, "at least 3 letters before '*'"),
    ("bad_speaker", GOOD.replace("speaker: client", "speaker: boss"), 3, "speaker: Input should be 'manager'"),
    ("no_terms", "lexicon: x\ntitle: X\nterms: []\n", 3, "terms: List should have at least 1 item"),
    ("unknown_include", GOOD.replace("  - id: price\n", "  - id: price\n    include: [company/nam]\n"), 6,
     "terms[0].include: no term 'company/nam' in the folder"),
    ("bad_fuzzy", GOOD.replace("  - id: price\n", "  - id: price\n    fuzzy: 0.3\n"), 6,
     "terms[0].fuzzy: fuzzy must be true, false or a similarity from 0.5 to 1, not 0.3"),
])
def test_broken_lexicons_are_refused_with_file_and_line(tmp_path: Path, name: str, content: str, line: int,
                                                       message: str) -> None:
    (tmp_path / "good.yaml").write_text(GOOD.replace("objections", "other"), encoding="utf-8")
    (tmp_path / f"{name}.yaml").write_text(content, encoding="utf-8")
    with pytest.raises(DefinitionError) as error:
        load_lexicons(tmp_path)
    problem = error.value.problems[0]
    assert (problem.path.name, problem.line) == (f"{name}.yaml", line), str(problem)
    assert message in problem.message, str(problem)


def test_a_lexicon_id_used_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "b.yaml").write_text("# the same id\n" + GOOD, encoding="utf-8")
    with pytest.raises(DefinitionError, match=r"b.yaml:2: lexicon id 'objections' is already used by a.yaml"):
        load_lexicons(tmp_path)


def test_every_problem_of_a_folder_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD + "    colour: red\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text(GOOD.replace("objections", "b").replace('["дорого"]', '[""]'),
                                     encoding="utf-8")
    done = subprocess.run([str(CALLQA), "lexicon", "check", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert lines == [f"callqa: error: {tmp_path}/a.yaml:7: terms[0].colour: Extra inputs are not permitted",
                     f"callqa: error: {tmp_path}/b.yaml:6: terms[0].phrases[0]: empty phrase"]


def test_analyze_refuses_a_broken_folder_before_touching_the_call(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD + "    colour: red\n", encoding="utf-8")
    done = subprocess.run([str(CALLQA), "analyze", str(tmp_path / "no-such-call.mp3"), "--lexicons", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 3
    assert done.stderr.startswith(f"callqa: error: {tmp_path}/a.yaml:7: terms[0].colour")  # not "file not found"


@pytest.mark.parametrize(("content", "line", "message"), [
    ("kind: required\n    weight: 5\n    require: {lexicon: objections}\n    within_turns: 2\n", 4,
     "within_turns needs `when`"),
    ("kind: metric\n    weight: 5\n    metric: talk_ratio\n    max: 0.6\n", 8, "metric: Input should be"),
    ("kind: forbidden\n    weight: 0\n    forbid: {lexicon: objections}\n", 7,
     "weight: Input should be greater than 0"),
    ("kind: bonus\n    weight: 5\n", 4, "does not match any of the expected tags"),
])
def test_broken_scorecards_are_refused_with_file_and_line(tmp_path: Path, content: str, line: int,
                                                         message: str) -> None:
    path = tmp_path / "card.yaml"
    path.write_text("scorecard: test\ntitle: Тест\ncriteria:\n  - id: c\n    title: Критерий\n    " + content,
                    encoding="utf-8")
    with pytest.raises(DefinitionError) as error:
        load_scorecard(path)
    problem = error.value.problems[0]
    assert problem.line == line, str(problem)
    assert message in problem.message, str(problem)


def test_a_scorecard_naming_unknown_lexicons_is_refused_where_it_names_them(tmp_path: Path) -> None:
    path = tmp_path / "card.yaml"
    path.write_text("scorecard: test\ntitle: Тест\ncriteria:\n  - id: c\n    title: Критерий\n    kind: required\n"
                    "    weight: 5\n    require: {lexicon: greeting, term: nonsense}\n", encoding="utf-8")
    with pytest.raises(DefinitionError, match=r"card.yaml:8: criteria\[0\].require: lexicon 'greeting' has no "
                                              r"term 'nonsense'"):
        load_scorecard(path).check_against(SHIPPED)


_LOAD_IN_A_FRESH_PROCESS = """
import json, sys
from pipeline.errors import DefinitionError
from pipeline.lexicon import load_lexicons
try:
    lexicons = load_lexicons(sys.argv[1])
except DefinitionError as error:
    print(json.dumps({"refused": str(error)}))
    raise SystemExit(0)
checked = "pymorphy3" in sys.modules  # what checking the phrases needs, and reading a compiled set does not
print(json.dumps({"version": lexicons.version, "checked": checked,
                  "matches": lexicons.matcher.matches_text("ну это дороговато, очень дорого", "objections", "price"),
                  "hits": lexicons.matcher.text_hits("это дорого")}))
"""


def _load_fresh(folder: Path, cache: Path | str) -> dict:
    done = subprocess.run([sys.executable, "-c", _LOAD_IN_A_FRESH_PROCESS, str(folder)], capture_output=True,
                          text=True, env={**os.environ, "CALLQA_CACHE_DIR": str(cache)}, check=True)
    return json.loads(done.stdout)


def test_a_checked_folder_is_read_back_compiled_in_a_fresh_process_without_checking_it_again(tmp_path: Path) -> None:
    folder, cache = tmp_path / "lexicons", tmp_path / "cache"
    folder.mkdir()
    (folder / "objections.yaml").write_text(GOOD, encoding="utf-8")
    first = _load_fresh(folder, cache)
    assert first["checked"] and first["matches"]
    assert len(list((cache / "lexicons").glob("*.pickle"))) == 1
    again = _load_fresh(folder, cache)
    assert not again["checked"]  # the work a fresh `callqa analyze` no longer waits for
    assert {**again, "checked": True} == first  # and it matches exactly as the checked folder did

    # An edit changes the key: the new content is checked, and a broken edit is refused with file and line
    # although a compiled set of the old content is kept.
    (folder / "objections.yaml").write_text(GOOD + "    colour: red\n", encoding="utf-8")
    refused = _load_fresh(folder, cache)
    assert refused["refused"].startswith(f"{folder}/objections.yaml:7: terms[0].colour"), refused
    (folder / "objections.yaml").write_text(GOOD.replace('["дорого"]', '["дорого", "дороговато"]'),
                                            encoding="utf-8")
    edited = _load_fresh(folder, cache)
    assert edited["checked"] and edited["version"] != first["version"]
    assert edited["hits"] == first["hits"]

    # A damaged file in the cache is rebuilt, not trusted and not fatal.
    for kept in (cache / "lexicons").glob("*.pickle"):
        kept.write_bytes(kept.read_bytes()[:100])
    rebuilt = _load_fresh(folder, cache)
    assert rebuilt == edited


def test_caching_compiled_lexicons_can_be_switched_off(tmp_path: Path) -> None:
    folder = tmp_path / "lexicons"
    folder.mkdir()
    (folder / "objections.yaml").write_text(GOOD, encoding="utf-8")
    assert _load_fresh(folder, "off")["checked"]
    assert _load_fresh(folder, "off")["checked"]
    assert not (tmp_path / "off").exists() and not Path("off").exists()


def test_the_text_libraries_load_once_without_torch_and_tokenise_as_in_the_foreground_when_warmed_up() -> None:
    """pymorphy3 warmed up in the background while the foreground tokenises; spaCy loaded on demand, for the one
    text that is not a plain word ("10:30")."""
    script = """
import json, sys
from pipeline.lexicon import text
if sys.argv[1] == "background":
    text.warm_up_in_background()
    text.warm_up_in_background()  # once per process
tokens = [text.tokenize(word) for word in ("Дорого,", "180", "по-моему", "Ёлки", "10:30")]  # races the warm-up
torch_with_spacy = "torch" in sys.modules
import torch  # still importable by whoever needs it (the diarizer)
print(json.dumps({"tokens": tokens, "loads": [text._load_tokenizer.cache_info().misses,
                                              text._load_morph.cache_info().misses],
                  "torch_with_spacy": torch_with_spacy, "torch_later": torch.tensor([2]).item()}))
"""
    outcomes = {way: json.loads(subprocess.run([sys.executable, "-c", script, way], capture_output=True, text=True,
                                               check=True).stdout)
                for way in ("foreground", "background")}
    assert outcomes["background"] == outcomes["foreground"]
    assert outcomes["background"]["loads"] == [1, 1]
    # spaCy's array library imports torch when it can: 1.3 s and 585 MB a process, for nothing a tokenizer uses.
    assert outcomes["background"]["torch_with_spacy"] is False and outcomes["background"]["torch_later"] == 2
