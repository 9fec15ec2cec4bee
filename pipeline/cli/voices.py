"""`callqa voice ...`: managers' voiceprints, which tell manager from client in mono calls."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import Channel, ConfigOption, app, expected_failures, stdout

voice_app = typer.Typer(no_args_is_help=True, help="Enroll, list and forget managers' voiceprints.")
app.add_typer(voice_app, name="voice")

StoreOption = Annotated[str | None, typer.Option("--store", help="The artifact store holding the voiceprints "
                                                 "(a folder or s3://bucket/prefix; default: run.store).")]


def _voiceprints(store: str | None, config: Path | None):
    from pipeline.settings import load_settings
    from pipeline.speakers.voiceprints import VoiceprintStore
    from pipeline.stores import open_store

    settings = load_settings(config)
    return settings, VoiceprintStore(open_store(store or settings.run.store, settings.s3), settings.voiceprints)


@voice_app.command()
@expected_failures
def enroll(
    audio: Annotated[list[Path], typer.Argument(help="Recordings of the manager alone, or stereo recordings with "
                                                "--channel naming the manager's leg.")],
    manager: Annotated[str, typer.Option("--manager", help="The manager's id (Bitrix24 user id) or name.")],
    name: Annotated[str | None, typer.Option("--name", help="The manager's name, for people.")] = None,
    channel: Annotated[Channel | None, typer.Option("--channel", help="Use this channel of stereo recordings "
                                                    "(default: the whole mix).")] = None,
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Add voice samples of a manager from recordings (each needs voiceprints.min_speech_s of speech)."""
    from pipeline.roles import channel_index
    from pipeline.speakers.voiceprints import sample_from_recording

    settings, voiceprints = _voiceprints(store, config)
    for path in audio:
        sample = sample_from_recording(path, manager_id=manager, manager_name=name,
                                       channel=channel_index(channel.value) if channel else None,
                                       options=settings.voiceprints, voices=settings.speakers.voices)
        added = voiceprints.add(sample)
        stdout.print(f"{path}: {sample.speech_s:g} s of speech "
                     f"{'enrolled' if added else 'already enrolled'} for {manager}")
    voiceprint = voiceprints.get(manager)
    stdout.print(f"{manager}: voiceprint of {voiceprint.samples} sample(s), {voiceprint.speech_s:g} s of speech, "
                 f"in {voiceprints.store.describe()}")


@voice_app.command("list")
@expected_failures
def list_voiceprints(store: StoreOption = None, config: ConfigOption = None) -> None:
    """The managers with voiceprints, their samples and seconds of speech."""
    _, voiceprints = _voiceprints(store, config)
    managers = voiceprints.managers()
    if not managers:
        stdout.print(f"no voiceprints in {voiceprints.store.describe()}")
    for manager in managers:
        voiceprint = voiceprints.get(manager)
        # Tab-separated for scripts (rich would expand the tabs).
        typer.echo(f"{manager}\t{voiceprint.manager_name or ''}\t{voiceprint.samples} sample(s)\t"
                   f"{voiceprint.speech_s:g} s")


@voice_app.command()
@expected_failures
def forget(
    manager: Annotated[str, typer.Argument(help="The manager's id or name, as enrolled.")],
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Remove every voice sample of a manager (voiceprints are biometric personal data)."""
    _, voiceprints = _voiceprints(store, config)
    stdout.print(f"{manager}: removed {voiceprints.forget(manager)} voice sample(s)")
