"""JSON Schemas of the files QA leads edit, generated from the pydantic models (shipped in lexicons/schema/).

Editors that speak the YAML language server read the `# yaml-language-server: $schema=...` line at the top of
each file and then complete keys and flag mistakes while typing.
"""

from __future__ import annotations

from pipeline.lexicon.model import LexiconFile
from pipeline.scoring.model import ScorecardFile

__all__ = ["schemas"]


def schemas() -> dict[str, dict]:
    """File name -> JSON Schema document."""
    documents = {}
    for name, model, title in (("lexicon.schema.json", LexiconFile, "callqa lexicon"),
                               ("scorecard.schema.json", ScorecardFile, "callqa scorecard")):
        document = {"$schema": "https://json-schema.org/draft/2020-12/schema", **model.model_json_schema()}
        document["title"] = title
        documents[name] = document
    return documents
