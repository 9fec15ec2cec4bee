"""What the command modules share: the typer apps, consoles, option types and the error handling."""

from __future__ import annotations

import functools
import sys
from datetime import date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipeline.errors import CallqaError, ConfigError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="Speech analytics for Bitrix24 sales calls.")
model_app = typer.Typer(no_args_is_help=True, help="List, prepare and fetch ASR models.")
lexicon_app = typer.Typer(no_args_is_help=True, help="Check, test and try lexicons (for QA leads).")
app.add_typer(model_app, name="model")
app.add_typer(lexicon_app, name="lexicon")

stdout = Console(highlight=False, soft_wrap=True)  # lines a user may grep stay whole
stderr = Console(stderr=True, highlight=False)

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CALLS = REPO_ROOT / "tests" / "data" / "calls"


class Channel(StrEnum):
    left = "left"
    right = "right"


class Direction(StrEnum):
    incoming = "in"
    outgoing = "out"


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def expected_failures(command):
    """Turn CallqaError into `callqa: error: ...` and its exit code, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except CallqaError as error:
            print(f"callqa: error: {error}", file=sys.stderr)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            print("callqa: interrupted", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper


ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML config file (or CALLQA_CONFIG).",
                                                    dir_okay=False)]
VerboseOption = Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv: debug).")]
ModelOption = Annotated[str | None, typer.Option("--model", help="ASR model name (whisper-base, large-v3, "
                                                 "large-v3-turbo) or a CTranslate2 model directory.")]
DeviceOption = Annotated[Device | None, typer.Option("--device", help="auto: CUDA when present, else CPU.")]
LexiconsOption = Annotated[Path | None, typer.Option("--lexicons", help="Lexicon folder (default: the shipped "
                                                     "lexicons/).", file_okay=False)]
ScorecardOption = Annotated[Path | None, typer.Option("--scorecard", help="Scorecard file (default: "
                                                      "lexicons/scorecards/sales.yaml).", dir_okay=False)]


def progress_bar():
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                    TimeElapsedColumn(), console=stderr, transient=True)


def time_window(day: str | None, since: str | None, until: str | None, zone: tzinfo | None = None):
    """--date, or --since/--until, as a window of time in `zone` (default: the host's; a Bitrix24 portal's calls
    go by the portal's zone: its managers' day), None for no window."""
    from pipeline.sources.base import TimeWindow

    local = zone or datetime.now().astimezone().tzinfo
    try:
        if day:
            if since or until:
                raise ConfigError("give --date or --since/--until, not both")
            today = datetime.now(local).date()
            named = {"today": today, "yesterday": today - timedelta(days=1)}
            start = datetime.combine(named.get(day) or date.fromisoformat(day), time(), tzinfo=local)
            return TimeWindow(since=start, until=start + timedelta(days=1))
        if since or until:
            start = datetime.fromisoformat(since) if since else datetime(1970, 1, 1, tzinfo=local)
            end = datetime.fromisoformat(until) if until else datetime.now(local)
            start = start if start.tzinfo else start.replace(tzinfo=local)
            end = end if end.tzinfo else end.replace(tzinfo=local)
            return TimeWindow(since=start, until=end)
    except ValueError as error:
        raise ConfigError(f"bad date: {error} (use YYYY-MM-DD or ISO 8601 times)") from error
    return None
