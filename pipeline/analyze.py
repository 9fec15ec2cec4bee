"""One call in, one result out: audio -> asr -> speakers -> roles -> turns -> metrics -> quality.

`CallAnalyzer` loads the ASR model once and analyses any number of recordings with it:

    analyzer = CallAnalyzer(load_settings())
    result = analyzer.analyze("call.mp3")
    write_text_atomic("call.json", result.to_json())

The audio streams through in blocks (bounded memory for long recordings); everything after ASR works on words
and the per-channel level track, so it can be re-run from a stored transcript.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np

import models
from pipeline import __version__
from pipeline.asr import AsrModel, AsrWord, batch_size_for, load_asr, transcribe
from pipeline.audio import (
    DUAL_MONO_THRESHOLD,
    SAMPLE_RATE_HZ,
    AudioBlock,
    AudioInfo,
    ChannelLayout,
    LevelTrack,
    decide_layout,
    iter_blocks,
    probe,
)
from pipeline.metrics import compute_metrics, talk_by_speaker
from pipeline.quality import assess_quality
from pipeline.roles import channel_index, roles_from_channel_map
from pipeline.schema import (
    AsrModelInfo,
    CallResult,
    ModelInfo,
    Role,
    SourceInfo,
    Speaker,
    SpeakerModelInfo,
    Word,
)
from pipeline.scoring.apply import ScoringSetup, apply_scoring
from pipeline.settings import Settings
from pipeline.speakers import (
    CHANNEL_SPEAKERS,
    MIXED_SPEAKER,
    SpeakerWord,
    attribute_by_channel,
    channel_activity,
    mark_overlaps,
    single_speaker,
)
from pipeline.speakers.overlaps import OverlapPatch, apply_overlap_patches, find_overlap_windows
from pipeline.turns import build_turns

__all__ = ["CallAnalyzer", "ProgressHook"]

logger = logging.getLogger(__name__)

# hook(step, completed=..., total=...): steps report seconds of audio done out of the call's duration.
ProgressHook = Callable[..., None]


def _no_progress(step: str, *, completed: float | None = None, total: float | None = None) -> None:
    return None


class _Transcript:
    """Words gathered block by block, per transcribed stream (the mix, or each channel)."""

    def __init__(self) -> None:
        self.by_stream: dict[int | None, list[AsrWord]] = {}
        self.overlap_patches: list[OverlapPatch] = []
        self.dropped_hallucinations = 0
        self.language: tuple[str, float, float] | None = None


class CallAnalyzer:
    """Analyses recordings with one loaded ASR model.

    Raises (from `analyze`):
        AudioError: the recording cannot be decoded (the message names the file and the reason).
    """

    def __init__(self, settings: Settings, *, asr_model: AsrModel | None = None,
                 scoring: ScoringSetup | None = None, concurrent_calls: int = 1) -> None:
        """
        Args:
            settings: all options.
            asr_model: an already loaded model (default: load `settings.model`).
            scoring: lexicons and scorecard to fill `hits` and `score` with (default: none, both empty).
            concurrent_calls: how many threads may transcribe with this model at once (a GPU batch worker).
        """
        self.settings = settings
        self.scoring = scoring
        self.asr_options = settings.asr
        if scoring and scoring.lexicons and settings.lexicon_hotwords and not settings.asr.hotwords:
            self.asr_options = settings.asr.model_copy(update={"hotwords": scoring.lexicons.hotwords()})
        if asr_model is None:
            resolved = models.resolve(settings.model, cache_dir=settings.models_dir)
            asr_model = load_asr(resolved.name, str(resolved.path), resolved.sha256, settings.device,
                                 settings.compute_type, settings.cpu_threads, concurrent_calls)
        self.asr_model = asr_model

    def analyze(
        self,
        path: str | Path | AudioInfo,
        *,
        call_id: str | None = None,
        direction: Literal["in", "out"] | None = None,
        manager_channel: Literal["left", "right"] | None = None,
        hook: ProgressHook | None = None,
    ) -> CallResult:
        """Analyse one recording.

        Args:
            path: the audio file, or what `audio.probe` found in it.
            call_id: the call's id in its source; default: derived from the file's sha256.
            direction: in (the client called) or out (the manager called), when known.
            manager_channel: overrides the configured stereo channel of the manager.
            hook: progress callback, `hook(step, completed=seconds, total=seconds)`.
        """
        hook = hook or _no_progress
        settings = self.settings
        info = path if isinstance(path, AudioInfo) else probe(path)
        manager_side = manager_channel or settings.manager_channel
        track = LevelTrack(2 if info.channels == 2 else 1)
        transcript = _Transcript()
        total_s = info.declared_duration_s
        duration_s = 0.0
        for block in iter_blocks(info, block_s=settings.block_s):
            block_levels = track.add(block)
            self._transcribe_block(block, info, transcript)
            if self._retranscribe_overlaps(info, track):
                self._transcribe_overlaps(block, block_levels, transcript)
            duration_s = block.start_s + block.duration_s
            hook("asr", completed=duration_s, total=max(total_s or 0.0, duration_s))
        layout = decide_layout(info, track)
        speaker_words, roles = self._attribute(transcript, track, layout, channel_index(manager_side))
        activity = channel_activity(track.frame_db, self.settings.channels) if layout.layout == "stereo" else None
        words = [Word(start=sw.word.start, end=sw.word.end, text=sw.word.text, speaker=sw.speaker,
                      role=roles.get(sw.speaker, "unknown"), prob=sw.word.prob, overlap=sw.overlap)
                 for sw in sorted(speaker_words, key=lambda sw: (sw.word.start, sw.word.end))]
        turns = build_turns(words, max_pause_s=settings.turn_max_pause_s)
        metrics = compute_metrics(words, turns, settings.metrics, activity=activity)
        quality = assess_quality(duration_s=duration_s, metrics=metrics, word_count=len(words),
                                 file_channels=info.channels, layout=layout, detected_language=transcript.language,
                                 language=settings.asr.language, options=settings.quality)
        result = CallResult(
            call_id=call_id or f"file-{info.sha256[:16]}",
            source=SourceInfo(uri=str(info.path), sha256=info.sha256, size_bytes=info.size_bytes,
                              container=info.container, codec=info.codec, sample_rate_hz=info.sample_rate_hz,
                              channels=info.channels),
            duration_s=round(duration_s, 3),
            channels=info.channels,
            layout=layout.layout,
            language=settings.asr.language,
            direction=direction,
            manager_channel=channel_index(manager_side) if layout.layout == "stereo" else None,
            model=self._model_info(layout),
            warnings=self._warnings(layout, quality, transcript),
            quality=quality,
            speakers=self._speakers(layout, roles, talk_by_speaker(words, settings.metrics.fill_gap_s)),
            words=words,
            turns=turns,
            metrics=metrics,
            analyzed_at=datetime.now(UTC).isoformat(timespec="seconds"),
            callqa_version=__version__,
        )
        if self.scoring is not None:
            result = apply_scoring(result, self.scoring)
        hook("done", completed=duration_s, total=duration_s)
        return result

    def _transcribe_block(self, block: AudioBlock, info: AudioInfo, transcript: _Transcript) -> None:
        options = self.asr_options
        if info.channels == 2 and self.settings.stereo_strategy == "per_channel":
            streams = [(channel, block.samples[channel]) for channel in (0, 1)]
        else:
            streams = [(None, block.mix())]
        for channel, samples in streams:
            result = transcribe(self.asr_model, samples, offset_s=block.start_s, options=options, channel=channel)
            transcript.by_stream.setdefault(channel, []).extend(result.words)
            transcript.dropped_hallucinations += len(result.dropped)
            if transcript.language is None and result.words and result.language_probabilities:
                heard = result.language_probabilities
                top = max(heard, key=heard.get)
                transcript.language = (top, heard[top], heard.get(options.language, 0.0))

    def _retranscribe_overlaps(self, info: AudioInfo, track: LevelTrack) -> bool:
        correlation = track.dual_mono_correlation
        return (info.channels == 2 and self.settings.stereo_strategy == "mix"
                and self.settings.channels.retranscribe_overlaps
                and (correlation is None or correlation < DUAL_MONO_THRESHOLD))

    def _transcribe_overlaps(self, block: AudioBlock, block_levels: np.ndarray, transcript: _Transcript) -> None:
        options = self.settings.channels
        windows = find_overlap_windows(block_levels, offset_s=block.start_s, min_overlap_s=options.overlap_min_s,
                                       pad_s=options.overlap_window_pad_s, options=options)
        for start, end in windows:
            first = int(round((start - block.start_s) * SAMPLE_RATE_HZ))
            last = int(round((end - block.start_s) * SAMPLE_RATE_HZ))
            words = []
            for channel in (0, 1):
                words += transcribe(self.asr_model, block.samples[channel, first:last], offset_s=start,
                                    options=self.asr_options, channel=channel).words
            transcript.overlap_patches.append(OverlapPatch(start=start, end=end, words=words))
            logger.info("re-transcribed overlap %.1f-%.1f s per channel", start, end)

    def _attribute(self, transcript: _Transcript, track: LevelTrack, layout: ChannelLayout,
                   manager_channel: int) -> tuple[list[SpeakerWord], dict[str, Role]]:
        streams = transcript.by_stream
        if layout.layout == "stereo":
            roles = roles_from_channel_map(manager_channel)
            if None in streams:
                by_level = attribute_by_channel(streams[None], track.frame_db, self.settings.channels)
                return apply_overlap_patches(by_level, transcript.overlap_patches, track.frame_db,
                                             self.settings.channels), roles
            per_channel = [SpeakerWord(word=word, speaker=CHANNEL_SPEAKERS[channel], channel=channel)
                           for channel in (0, 1) for word in streams.get(channel, [])]
            return mark_overlaps(per_channel, track.frame_db, self.settings.channels), roles
        if None in streams:
            words = streams[None]
        else:
            # Transcribed per channel, but the legs turned out to be one mix (or one is dead): keep one copy.
            audible = [channel for channel in (0, 1) if channel not in layout.silent_channels] or [0]
            words = streams.get(audible[0], [])
        return single_speaker(words), {MIXED_SPEAKER: "unknown"}

    def _model_info(self, layout: ChannelLayout) -> ModelInfo:
        asr = self.asr_model
        options = self.asr_options
        return ModelInfo(
            asr=AsrModelInfo(name=asr.name, engine="faster-whisper", engine_version=asr.engine_version,
                             model_sha256=asr.sha256, device=asr.device, compute_type=asr.compute_type,
                             batch_size=batch_size_for(asr.device, options),
                             beam_size=options.beam_size, hotwords=bool(options.hotwords)),
            speakers=SpeakerModelInfo(
                name="channels" if layout.layout == "stereo" else "none",
                version=f"{self.settings.stereo_strategy}/1" if layout.layout == "stereo" else "1",
            ),
        )

    @staticmethod
    def _warnings(layout: ChannelLayout, quality, transcript: _Transcript) -> list[str]:
        warnings = [gate.message for gate in quality.gates if not gate.passed and gate.message]
        if layout.layout == "mono":
            warnings.append("mono recording: speakers are not separated yet, roles are unknown "
                            "(diarization of mono calls is not available in this version)")
        if transcript.dropped_hallucinations:
            warnings.append(f"dropped {transcript.dropped_hallucinations} phrase(s) Whisper invented over "
                            "non-speech audio")
        return warnings

    @staticmethod
    def _speakers(layout: ChannelLayout, roles: dict[str, Role], talk_s: dict[str, float]) -> list[Speaker]:
        if layout.layout == "stereo":
            return [Speaker(id=speaker, role=roles[speaker], channel=index,
                            talk_s=round(talk_s.get(speaker, 0.0), 2))
                    for index, speaker in enumerate(CHANNEL_SPEAKERS)]
        return [Speaker(id=MIXED_SPEAKER, role="unknown", channel=None,
                        talk_s=round(talk_s.get(MIXED_SPEAKER, 0.0), 2))]

