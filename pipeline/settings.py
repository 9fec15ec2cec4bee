"""Configuration: defaults < a YAML config file < CALLQA_* environment variables < command-line options.

The embedded defaults need no configuration at all. A config file is named by `--config` or `CALLQA_CONFIG`;
nested options use `__` in environment variables (CALLQA_ASR__BEAM_SIZE=3). docs/configuration.md lists them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, YamlConfigSettingsSource

from pipeline.asr import AsrOptions
from pipeline.bitrix24.settings import Bitrix24Settings
from pipeline.errors import ConfigError
from pipeline.metrics import MetricsOptions
from pipeline.publish.settings import PublishSettings
from pipeline.quality import QualityOptions
from pipeline.report.model import ReportOptions
from pipeline.roles import RoleOptions
from pipeline.speakers import ChannelOptions
from pipeline.speakers.diarization import SpeakerOptions
from pipeline.speakers.voiceprints import VoiceprintOptions
from pipeline.support.s3 import S3Settings
from pipeline.web.settings import WebSettings

__all__ = ["RetentionOptions", "RunOptions", "Settings", "load_settings"]


class RunOptions(BaseModel):
    """The nightly run (`callqa run`).

    Attributes:
        source: a folder path, s3://bucket/prefix or bitrix24; required (`--source`).
        store: a folder path or s3://bucket/prefix for the artifacts.
        scheduler: a Dask scheduler address (tcp://host:8786); None starts a LocalCluster sized to the machine.
        workers: LocalCluster worker processes; None sizes to the machine (see batch/cluster.py).
        gpu_slots: calls a GPU worker transcribes at once (several keep a big GPU busy).
        max_in_flight: calls being worked on at once (their audio and transcripts held in worker memory);
            None means 4 per worker, or 4 per GPU slot.
        claim_ttl_s: a run claims each call it transcribes (batch/claims.py) and renews the claim as the work
            goes on; a claim not renewed for this long lapses, so a crashed run holds its calls at most this long.
        audio_copy: keep a compressed copy of each recording in the store (calls/<id>/audio.webm, Opus, about
            16 kbps per channel) so that it can be played later; None means on, unless
            bitrix24.redact_stored_transcripts is on (the audio says what the redacted words hide).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str | None = None
    store: str = "callqa-artifacts"
    scheduler: str | None = None
    workers: int | None = Field(None, ge=1)
    gpu_slots: int = Field(2, ge=1)
    max_in_flight: int | None = Field(None, ge=1)
    claim_ttl_s: float = Field(900.0, gt=0)
    audio_copy: bool | None = None


class RetentionOptions(BaseModel):
    """How long the store keeps what it holds of people (`callqa retention` deletes what is older); None keeps it
    forever. A call's age runs from when a run stored it (audio.json's stored_at, else the result's analyzed_at).

    Attributes:
        audio_days: the audio copies (calls/<id>/audio.webm).
        transcript_days: the transcripts (calls/<id>/transcript.json); the result stays, with its score, but the
            call can no longer be re-scored.
        voiceprint_days: managers' voice samples, by when each was enrolled.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    audio_days: float | None = Field(None, ge=0)
    transcript_days: float | None = Field(None, ge=0)
    voiceprint_days: float | None = Field(None, ge=0)


class Settings(BaseSettings):
    """Everything a run can be told.

    Attributes:
        model: ASR model: a registry name (whisper-base, large-v3, large-v3-turbo) or a model directory.
        device: auto (CUDA when present, else CPU), cpu or cuda.
        compute_type: CTranslate2 compute type; default int8 on CPU, float16 on CUDA.
        cpu_threads: ASR threads on CPU; 0 = every available core.
        models_dir: where assembled and fetched models live (default: models/cache in the checkout).
        manager_channel: the stereo channel that carries the manager's leg.
        stereo_strategy: "mix_redecode" (default) transcribes the mixed call, attributes words by channel level
            (keeps context for short replies), then hears the client's turns again on the client's leg alone,
            each turn keeping the more probable hypothesis: client-word lemma WER 0.28 -> 0.17 on the sample
            calls with the mix's attribution, for about 28 % more compute (bench/README.md,
            `channels.redecode_*`); "mix" stops after the mix (the cheaper way); "per_channel" transcribes each
            leg on its own (for comparison).
        block_s: long recordings are decoded and transcribed in blocks of about this many seconds.
        turn_max_pause_s: a pause longer than this inside one speaker's speech starts a new turn.
        lexicons: the lexicon folder (default: the shipped lexicons/).
        scorecard: the scorecard file (default: lexicons/scorecards/sales.yaml).
        lexicon_hotwords: bias ASR towards every lexicon's phrases (faster-whisper hotwords); off by default, see
            bench/README.md for what it does to recall and errors.
        hotword_lexicons: the lexicons whose phrases bias ASR when `lexicon_hotwords` is off; ["company"] once
            company.yaml holds your company's names, which whisper-base otherwise misspells (off by default: the
            shipped sample names disturb recognition of other companies' calls; bench/README.md).
        s3: S3 endpoint and credentials (secrets: use CALLQA_S3__ACCESS_KEY_ID / CALLQA_S3__SECRET_ACCESS_KEY).
        run: the nightly run's source, store and cluster.
        retention: how many days the store keeps audio copies, transcripts and voiceprints (`callqa retention`).
        report: the supervisor's report: bands of the 1-5 ratings, the success criterion, the deal link.
        bitrix24: the portal (webhook or OAuth), its limits, where comments go, personal data protection.
        publish: what is written into Bitrix24 besides the comment: transcripts, deal fields, notifications.
        speakers: the diarizer of mono calls (embedded on CPU, or pyannote from a local pipeline folder).
        roles: how manager and client are told apart in mono calls.
        voiceprints: manager voiceprints (enrolled from stereo calls or explicitly).
        web: the workbench (`callqa serve`): users file, sessions, single sign-on, the call index.
    """

    model_config = SettingsConfigDict(env_prefix="CALLQA_", env_nested_delimiter="__", extra="forbid",
                                      validate_default=True)

    model: str = "whisper-base"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str | None = None
    cpu_threads: int = Field(0, ge=0)
    models_dir: Path | None = None
    manager_channel: Literal["left", "right"] = "left"
    stereo_strategy: Literal["mix", "per_channel", "mix_redecode"] = "mix_redecode"
    block_s: float = Field(600.0, ge=10.0)
    turn_max_pause_s: float = Field(2.0, gt=0)
    lexicons: Path | None = None
    scorecard: Path | None = None
    lexicon_hotwords: bool = False
    hotword_lexicons: list[str] = []
    s3: S3Settings = S3Settings()
    run: RunOptions = RunOptions()
    retention: RetentionOptions = RetentionOptions()
    report: ReportOptions = ReportOptions()
    bitrix24: Bitrix24Settings = Bitrix24Settings()
    publish: PublishSettings = PublishSettings()
    asr: AsrOptions = AsrOptions()
    channels: ChannelOptions = ChannelOptions()
    speakers: SpeakerOptions = SpeakerOptions()
    roles: RoleOptions = RoleOptions()
    voiceprints: VoiceprintOptions = VoiceprintOptions()
    metrics: MetricsOptions = MetricsOptions()
    quality: QualityOptions = QualityOptions()
    web: WebSettings = WebSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win: options given in code or on the command line, then the environment, then the file.
        return init_settings, env_settings, YamlConfigSettingsSource(settings_cls)


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(piece) for piece in item["loc"]) or "settings"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from all sources; `overrides` are command-line options (None means not given).

    Raises:
        ConfigError: the config file is missing or invalid, or a value is out of range.
    """
    config_path = config_file or os.environ.get("CALLQA_CONFIG")
    given = {key: value for key, value in overrides.items() if value is not None}
    settings_cls: type[Settings] = Settings
    if config_path:
        config_path = Path(config_path)
        if not config_path.is_file():
            raise ConfigError(f"config file not found: {config_path}")
        # The YAML source reads the file named in model_config; a subclass names this run's file.
        settings_cls = type("Settings", (Settings,), {
            "model_config": SettingsConfigDict(**{**Settings.model_config, "yaml_file": config_path,
                                                  "yaml_file_encoding": "utf-8"}),
        })
    try:
        return settings_cls(**given)
    except ValidationError as error:
        where = f" (config file {config_path})" if config_path else ""
        raise ConfigError(f"invalid settings{where}: {_describe(error)}") from error
    except ValueError as error:  # a YAML syntax error, for one
        raise ConfigError(f"invalid config file {config_path}: {error}") from error
