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
from dataclasses import dataclass, replace
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
    AudioGap,
    AudioInfo,
    ChannelLayout,
    LevelTrack,
    decide_layout,
    iter_blocks,
    probe,
)
from pipeline.errors import DiarizationError
from pipeline.lexicon import LexiconSet
from pipeline.metrics import compute_metrics, talk_by_speaker
from pipeline.quality import assess_quality
from pipeline.roles import channel_index, roles_from_channel_map, roles_of_mono_call, unknown_roles_warning
from pipeline.schema import (
    AsrModelInfo,
    AudioGapInfo,
    CallResult,
    ModelInfo,
    Role,
    RoleDetection,
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
from pipeline.speakers.assign import assign_speakers
from pipeline.speakers.diarization import DiarizerSession, load_diarizer
from pipeline.speakers.overlaps import OverlapPatch, apply_overlap_patches, find_overlap_windows
from pipeline.speakers.voices import VoiceWindows, embed_speech
from pipeline.turns import build_turns
from pipeline.voiceprints import Voiceprint, mean_voice

__all__ = ["CallAnalysis", "CallAnalyzer", "ProgressHook"]

logger = logging.getLogger(__name__)

# hook(step, completed=..., total=...): steps report seconds of audio done out of the call's duration.
ProgressHook = Callable[..., None]


def _no_progress(step: str, *, completed: float | None = None, total: float | None = None) -> None:
    return None


class _Transcript:
    """What the blocks of one call leave behind: words per transcribed stream (the mix, or each channel), overlap
    patches, the diarizer's session (calls that may be mono) and the manager leg's voice windows (stereo)."""

    def __init__(self) -> None:
        self.by_stream: dict[int | None, list[AsrWord]] = {}
        self.overlap_patches: list[OverlapPatch] = []
        self.diarization: DiarizerSession | None = None
        self.manager_voice: VoiceWindows | None = None
        self.dropped_hallucinations = 0
        self.language: tuple[str, float, float] | None = None
        self.gaps: list[AudioGap] = []  # damaged stretches, in time order


@dataclass(frozen=True)
class CallAnalysis:
    """`analyze_call`'s output: the result, and the manager's voice sample from a stereo call when asked for."""

    result: CallResult
    manager_voice: np.ndarray | None = None  # (256,) unit length, resemblyzer space
    manager_speech_s: float = 0.0


@dataclass(frozen=True)
class _Speakers:
    words: list[SpeakerWord]
    roles: dict[str, Role]
    detection: RoleDetection
    backend: tuple[str, str]  # name, version
    confidence: dict[str, float | None]
    warnings: list[str]


class CallAnalyzer:
    """Analyses recordings with one loaded ASR model (and, for mono calls, one loaded diarizer).

    Raises (from `analyze`):
        AudioError: the recording cannot be decoded (the message names the file and the reason).
    """

    def __init__(self, settings: Settings, *, asr_model: AsrModel | None = None,
                 scoring: ScoringSetup | None = None, role_lexicons: LexiconSet | None = None,
                 concurrent_calls: int = 1) -> None:
        """
        Args:
            settings: all options.
            asr_model: an already loaded model (default: load `settings.model`).
            scoring: lexicons and scorecard to fill `hits` and `score` with (default: none, both empty).
            role_lexicons: lexicons whose role cues tell manager from client in mono calls (default: the
                scoring's lexicons). A batch worker that scores elsewhere passes them here.
            concurrent_calls: how many threads may transcribe with this model at once (a GPU batch worker).

        Raises:
            ModelError, ConfigError: the ASR model or the configured diarizer cannot be loaded.
        """
        self.settings = settings
        self.scoring = scoring
        self.role_lexicons = role_lexicons or (scoring.lexicons if scoring else None)
        self.asr_options = settings.asr
        if scoring and scoring.lexicons and settings.lexicon_hotwords and not settings.asr.hotwords:
            self.asr_options = settings.asr.model_copy(update={"hotwords": scoring.lexicons.hotwords()})
        if asr_model is None:
            resolved = models.resolve(settings.model, cache_dir=settings.models_dir)
            asr_model = load_asr(resolved.name, str(resolved.path), resolved.sha256, settings.device,
                                 settings.compute_type, settings.cpu_threads, concurrent_calls)
        self.asr_model = asr_model
        # Loaded now, so a missing pyannote pipeline is refused before any call is touched.
        self.diarizer = load_diarizer(settings.speakers)

    def analyze(self, path: str | Path | AudioInfo, **options) -> CallResult:
        """Analyse one recording; the options are `analyze_call`'s."""
        return self.analyze_call(path, **options).result

    def analyze_call(
        self,
        path: str | Path | AudioInfo,
        *,
        call_id: str | None = None,
        direction: Literal["in", "out"] | None = None,
        manager_channel: Literal["left", "right"] | None = None,
        voiceprint: Voiceprint | None = None,
        collect_manager_voice: bool = False,
        hook: ProgressHook | None = None,
    ) -> CallAnalysis:
        """Analyse one recording.

        Args:
            path: the audio file, or what `audio.probe` found in it.
            call_id: the call's id in its source; default: derived from the file's sha256.
            direction: in (the client called) or out (the manager called), when known.
            manager_channel: overrides the configured stereo channel of the manager.
            voiceprint: the call's manager's voiceprint (voiceprints.py), evidence for the roles in a mono call.
            collect_manager_voice: in a stereo call, also embed the manager's leg (a voiceprint sample).
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
            transcript.gaps += [gap for gap in block.gaps if gap not in transcript.gaps]  # one may span a cut
            # What the call looks like so far: mono files, dual mono and a dead leg are diarized.
            looks_mono = decide_layout(info, track).layout == "mono"
            self._transcribe_block(block, info, transcript, mono=looks_mono)
            self._follow_voices(block, transcript, looks_mono=looks_mono, manager_channel=channel_index(manager_side),
                                collect_manager_voice=collect_manager_voice)
            if self._retranscribe_overlaps(info, track):
                self._transcribe_overlaps(block, block_levels, transcript)
            duration_s = block.start_s + block.duration_s
            hook("asr", completed=duration_s, total=max(total_s or 0.0, duration_s))
        layout = decide_layout(info, track)
        if layout.layout == "stereo":
            speakers = self._stereo_speakers(transcript, track, channel_index(manager_side))
        else:
            speakers = self._mono_speakers(transcript, layout, direction=direction, voiceprint=voiceprint)
        roles = speakers.roles
        activity = channel_activity(track.frame_db, self.settings.channels) if layout.layout == "stereo" else None
        words = [Word(start=sw.word.start, end=sw.word.end, text=sw.word.text, speaker=sw.speaker,
                      role=roles.get(sw.speaker, "unknown"), prob=sw.word.prob, overlap=sw.overlap)
                 for sw in sorted(speakers.words, key=lambda sw: (sw.word.start, sw.word.end))]
        turns = build_turns(words, max_pause_s=settings.turn_max_pause_s)
        metrics = compute_metrics(words, turns, settings.metrics, activity=activity)
        quality = assess_quality(duration_s=duration_s, metrics=metrics, word_count=len(words),
                                 file_channels=info.channels, layout=layout, detected_language=transcript.language,
                                 language=settings.asr.language,
                                 damaged_s=sum(gap.duration_s for gap in transcript.gaps), options=settings.quality)
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
            role_detection=speakers.detection,
            model=self._model_info(speakers.backend),
            warnings=self._warnings(quality, transcript, speakers),
            quality=quality,
            audio_gaps=[AudioGapInfo(start=gap.start_s, end=gap.end_s, size_bytes=gap.size_bytes)
                        for gap in transcript.gaps],
            speakers=self._speaker_list(layout, speakers, talk_by_speaker(words, settings.metrics.fill_gap_s)),
            words=words,
            turns=turns,
            metrics=metrics,
            analyzed_at=datetime.now(UTC).isoformat(timespec="seconds"),
            callqa_version=__version__,
        )
        if self.scoring is not None:
            result = apply_scoring(result, self.scoring)
        hook("done", completed=duration_s, total=duration_s)
        manager_voice = transcript.manager_voice if layout.layout == "stereo" else None
        if manager_voice is not None and len(manager_voice):
            return CallAnalysis(result=result, manager_voice=mean_voice(manager_voice.matrix()),
                                manager_speech_s=round(len(manager_voice) / settings.speakers.voices.windows_per_s,
                                                       1))
        return CallAnalysis(result=result)

    def _transcribe_block(self, block: AudioBlock, info: AudioInfo, transcript: _Transcript, *, mono: bool) -> None:
        options = self.asr_options
        if info.channels == 2 and self.settings.stereo_strategy == "per_channel":
            streams = [(channel, block.samples[channel]) for channel in (0, 1)]
        else:
            streams = [(None, block.mix())]
        for channel, samples in streams:
            result = transcribe(self.asr_model, samples, offset_s=block.start_s, options=options, channel=channel,
                                mono=mono)
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

    def _follow_voices(self, block: AudioBlock, transcript: _Transcript, *, looks_mono: bool, manager_channel: int,
                       collect_manager_voice: bool) -> None:
        """Feed the diarizer while the call looks mono, and embed the manager's leg while it looks stereo when a
        voiceprint sample is wanted."""
        if looks_mono and self.diarizer is not None:
            if transcript.diarization is None:
                transcript.diarization = self.diarizer.session()
            transcript.diarization.add(block.mix(), offset_s=block.start_s)
        elif not looks_mono and collect_manager_voice:
            if transcript.manager_voice is None:
                transcript.manager_voice = VoiceWindows()
            transcript.manager_voice.add(*embed_speech(block.samples[manager_channel], offset_s=block.start_s,
                                                       options=self.settings.speakers.voices))

    def _stereo_speakers(self, transcript: _Transcript, track: LevelTrack, manager_channel: int) -> _Speakers:
        """Each channel is one party; words of the mix go to the channel that carried them."""
        streams = transcript.by_stream
        options = self.settings.channels
        if None in streams:
            by_level = attribute_by_channel(streams[None], track.frame_db, options)
            words = apply_overlap_patches(by_level, transcript.overlap_patches, track.frame_db, options)
        else:
            words = mark_overlaps([SpeakerWord(word=word, speaker=CHANNEL_SPEAKERS[channel], channel=channel)
                                   for channel in (0, 1) for word in streams.get(channel, [])],
                                  track.frame_db, options)
        return _Speakers(words=words, roles=roles_from_channel_map(manager_channel),
                         detection=RoleDetection(method="channels", manager=CHANNEL_SPEAKERS[manager_channel],
                                                 confidence=1.0),
                         backend=("channels", f"{self.settings.stereo_strategy}/1"), confidence={}, warnings=[])

    def _mono_speakers(self, transcript: _Transcript, layout: ChannelLayout, *, direction: str | None,
                       voiceprint: Voiceprint | None) -> _Speakers:
        """Diarize, give each word the speaker covering most of it, then find the roles."""
        streams = transcript.by_stream
        if None in streams:
            asr_words = streams[None]
        else:
            # Transcribed per channel, but the legs turned out to be one mix (or one is dead): keep one copy.
            audible = [channel for channel in (0, 1) if channel not in layout.silent_channels] or [0]
            asr_words = streams.get(audible[0], [])
        undivided = _Speakers(words=single_speaker(asr_words), roles={MIXED_SPEAKER: "unknown"},
                              detection=RoleDetection(method="none"), backend=("none", "1"), confidence={},
                              warnings=["mono recording: speakers were not separated, roles are unknown"])
        if transcript.diarization is None or not asr_words:
            return undivided
        try:
            diarization = transcript.diarization.finish()
        except DiarizationError as error:
            logger.warning("diarization failed: %s", error)
            return replace(undivided, warnings=[f"mono recording: diarization failed ({error}); speakers were "
                                                "not separated, roles are unknown"])
        if not diarization.segments:
            return replace(undivided, backend=(diarization.backend, diarization.version))
        speaker_words = assign_speakers(asr_words, diarization.segments)
        unlabelled = [Word(start=sw.word.start, end=sw.word.end, text=sw.word.text, speaker=sw.speaker,
                           role="unknown", prob=sw.word.prob, overlap=sw.overlap)
                      for sw in sorted(speaker_words, key=lambda sw: (sw.word.start, sw.word.end))]
        roles, detection = roles_of_mono_call(unlabelled, lexicons=self.role_lexicons, direction=direction,
                                              voices=diarization.voices, voiceprint=voiceprint,
                                              turn_max_pause_s=self.settings.turn_max_pause_s,
                                              options=self.settings.roles)
        warnings = [f"mono recording: {note}" for note in diarization.notes]
        if (warning := unknown_roles_warning(detection)) is not None:
            warnings.append(warning)
        return _Speakers(words=speaker_words, roles=roles, detection=detection,
                         backend=(diarization.backend, diarization.version), confidence=diarization.confidence,
                         warnings=warnings)

    def _model_info(self, backend: tuple[str, str]) -> ModelInfo:
        asr = self.asr_model
        options = self.asr_options
        return ModelInfo(
            asr=AsrModelInfo(name=asr.name, engine="faster-whisper", engine_version=asr.engine_version,
                             model_sha256=asr.sha256, device=asr.device, compute_type=asr.compute_type,
                             batch_size=batch_size_for(asr.device, options),
                             beam_size=options.beam_size, hotwords=bool(options.hotwords)),
            speakers=SpeakerModelInfo(name=backend[0], version=backend[1]),
        )

    @staticmethod
    def _warnings(quality, transcript: _Transcript, speakers: _Speakers) -> list[str]:
        warnings = [gate.message for gate in quality.gates if not gate.passed and gate.message]
        warnings += [f"damaged audio {gap.start_s:.1f}-{gap.end_s:.1f} s ({gap.size_bytes} bytes could not be "
                     "decoded): analysed as silence" for gap in transcript.gaps]
        warnings += speakers.warnings
        if transcript.dropped_hallucinations:
            warnings.append(f"dropped {transcript.dropped_hallucinations} phrase(s) Whisper invented over "
                            "non-speech audio")
        return warnings

    @staticmethod
    def _speaker_list(layout: ChannelLayout, speakers: _Speakers, talk_s: dict[str, float]) -> list[Speaker]:
        if layout.layout == "stereo":
            return [Speaker(id=speaker, role=speakers.roles[speaker], channel=index,
                            talk_s=round(talk_s.get(speaker, 0.0), 2))
                    for index, speaker in enumerate(CHANNEL_SPEAKERS)]
        ids = list(dict.fromkeys([*speakers.roles, *talk_s]))
        return [Speaker(id=speaker, role=speakers.roles.get(speaker, "unknown"), channel=None,
                        talk_s=round(talk_s.get(speaker, 0.0), 2), confidence=speakers.confidence.get(speaker))
                for speaker in ids]
