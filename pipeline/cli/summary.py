"""The short human-readable view of a result that `callqa analyze` and `callqa demo` print."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from pipeline.schema import CallResult
from pipeline.support.russian import call_time_tenths

__all__ = ["render_summary"]


def _pair(value_manager, value_client, unit: str = "") -> str:
    def show(value):
        return "—" if value is None else f"{value}{unit}"

    return f"manager {show(value_manager)} / client {show(value_client)}"


def render_summary(result: CallResult, *, max_turns: int = 8, json_path: str | None = None) -> Group:
    """A few lines: duration and layout, who spoke how much, the talk ratio, the first turns."""
    metrics = result.metrics
    quality = "quality ok" if result.quality.passed else "quality: " + ", ".join(
        gate.id for gate in result.quality.gates if not gate.passed)
    layout: str = result.layout
    if result.layout == "stereo":
        layout += f" (manager on the {('left', 'right')[result.manager_channel or 0]})"
    elif result.model.speakers.name != "none":
        layout += f" ({result.model.speakers.name} diarizer, {len(result.speakers)} voice(s)"
        detection = result.role_detection
        if detection is not None and detection.manager is not None:
            kinds = ", ".join(dict.fromkeys(e.kind for e in detection.evidence if e.kind != "speakers"))
            layout += f"; manager {detection.manager}, confidence {detection.confidence:.2f} from {kinds}"
        layout += ")"
    header = Text.assemble((Text(result.source.uri.rsplit("/", 1)[-1], style="bold")),
                           f"  {call_time_tenths(result.duration_s)}  {layout}  {quality}")
    lines: list[Text | Table] = [header]
    if metrics.talk_ratio_manager is not None:
        lines.append(Text(
            f"  talk: {_pair(metrics.manager_talk_s, metrics.client_talk_s, ' s')}, "
            f"talk ratio (manager) {metrics.talk_ratio_manager:.2f}, silence {metrics.silence_s} s"))
        lines.append(Text(
            f"  questions {_pair(metrics.questions.manager, metrics.questions.client)}; "
            f"interruptions {_pair(metrics.interruptions.manager, metrics.interruptions.client)}; "
            "longest monologue "
            f"{_pair(metrics.longest_monologue_s.manager, metrics.longest_monologue_s.client, ' s')}"))
    else:
        lines.append(Text(f"  talk: {metrics.total_talk_s} s in all, roles unknown, silence {metrics.silence_s} s"))
    score = result.score
    if score is not None:
        verdict = "passed" if score.passed else "not passed"
        if score.auto_failed:
            verdict += f", auto-failed by {', '.join(score.auto_failed)}"
        groups = "; ".join(f"{group.title}: {group.grade}" for group in score.groups if group.grade is not None)
        lines.append(Text(f"  score {score.total:g}/100, grade {score.grade} ({verdict})"
                          + (f"; {groups}" if groups else ""), style="bold"))
        failed = [c.title for c in score.criteria if c.applicable and not c.passed]
        if failed:
            lines.append(Text("  not met: " + "; ".join(failed)))
    if result.hits:
        lines.append(Text(f"  {len(result.hits)} lexicon hits", style="dim"))
    transcript = Table.grid(padding=(0, 1))
    for turn in result.turns[:max_turns]:
        transcript.add_row(Text("  " + call_time_tenths(turn.start), style="dim"),
                           Text(turn.role, style="cyan" if turn.role == "manager" else "magenta"),
                           Text(turn.text if len(turn.text) <= 200 else turn.text[:199] + "…"))
    lines.append(transcript)
    if len(result.turns) > max_turns:
        lines.append(Text(f"  … {len(result.turns) - max_turns} more turns", style="dim"))
    for warning in result.warnings:
        lines.append(Text(f"  warning: {warning}", style="yellow"))
    if json_path:
        lines.append(Text(f"  result: {json_path}", style="green"))
    return Group(*lines)
