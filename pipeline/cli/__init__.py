"""`callqa`: the command line (contract in docs/cli.md).

Thin by design: parse options, build `Settings`, call the pipeline, print. Expected failures (`CallqaError`)
become one line on stderr and an exit code (1: a call failed, 2: wrong usage, 3: configuration, model, lexicon
or scorecard); heavy modules load inside the commands so that `callqa --help` answers at once.
"""

from pipeline.cli import bitrix24, calls, lexicons, models, report, retention, run, serve, voices  # noqa: F401  (each registers its commands)
from pipeline.cli.common import app

__all__ = ["app"]
