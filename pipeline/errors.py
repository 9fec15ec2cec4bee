"""The exceptions callqa raises for expected failures.

Everything a user can cause or fix (a bad recording, a missing model, a wrong option) is a `CallqaError`; the CLI
prints its message as one line and exits non-zero without a traceback. Anything else is a bug and keeps its
traceback.

    CallqaError
    ├── ConfigError          wrong settings or options (exit code 3)
    │   └── DefinitionError  a lexicon or scorecard file is wrong: every problem with file and line
    ├── ModelError           a model is missing, incomplete or fails to load (exit code 3)
    ├── CallError            one call cannot be analysed (exit code 1); the batch goes on
    │   └── AudioError       the recording is missing, empty, not audio, truncated or undecodable
    └── DiarizationError     the diarizer failed on a call (the call keeps one voice, with a warning)
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["AudioError", "CallError", "CallqaError", "ConfigError", "DefinitionError", "DiarizationError",
           "ModelError"]


class CallqaError(Exception):
    """Root of the expected failures; `str(error)` is a complete one-line explanation."""

    exit_code = 1


class ConfigError(CallqaError):
    exit_code = 3


class DefinitionError(ConfigError):
    """Problems in files QA leads edit. `problems` lists each with its file and line (see yamlfile.Problem)."""

    def __init__(self, problems: list) -> None:
        self.problems = list(problems)
        first = str(self.problems[0]) if self.problems else "invalid definition"
        more = len(self.problems) - 1
        super().__init__(first + (f" (and {more} more problem{'s' if more > 1 else ''}; "
                                  "`callqa lexicon check` lists them)" if more else ""))


class ModelError(CallqaError):
    exit_code = 3


class CallError(CallqaError):
    """One call failed; `source` names the recording (a path or a URI without secrets)."""

    exit_code = 1

    def __init__(self, source: str | Path, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class AudioError(CallError):
    pass


class DiarizationError(CallqaError):
    """The diarizer failed on one call; the analyzer keeps the call undiarized and says so in its warnings."""
