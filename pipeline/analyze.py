"""The audio half of a call: audio -> asr -> speakers -> `Transcript`; then `derive()` makes the result.

`CallAnalyzer` loads the ASR model once and analyses any number of recordings with it:

    analyzer = CallAnalyzer(load_settings(), setup=DeriveSetup.load())
    transcript = analyzer.transcribe("call.mp3")      # what the audio says: stored, never recomputed
    result = derive(transcript, analyzer.setup)       # what a reader sees: `analyzer.analyze` does both

The audio streams through in blocks (bounded memory for long recordings). Nothing after the transcript needs
the audio: roles, turns, metrics, quality, hits and score are all `derive`'s (pipeline/derive.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
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
from pipeline.derive import DeriveSetup, derive
from pipeline.errors import DiarizationError
from pipeline.lexicon.text import warm_up_in_background
from pipeline.roles import VoiceprintMatch, channel_index
from pipeline.schema import AsrModelInfo, AudioGapInfo, CallResult, ModelInfo, SourceInfo, SpeakerModelInfo
from pipeline.settings import Settings
from pipeline.speakers import (
    CHANNEL_SPEAKERS,
    MIXED_SPEAKER,
    SpeakerWord,
    attribute_by_channel,
    channel_activity,
    load_diarizer,
    mark_overlaps,
    single_speaker,
)
from pipeline.speakers.assign import assign_speakers
from pipeline.speakers.diarization import DiarizerSession
from pipeline.speakers.overlaps import OverlapPatch, apply_overlap_patches, find_overlap_windows
from pipeline.speakers.redecode import LegPatch, apply_leg_patches, leg_turns, pack_turns, unpack_words
from pipeline.speakers.sentences import (
    SentenceVoice,
    embed_short_sentences,
    realign_to_sentences,
    settle_short_sentences,
)
from pipeline.speakers.voiceprints import Voiceprint, mean_voice
from pipeline.speakers.voices import VoiceWindows, embed_speech
from pipeline.support.progress import ProgressHook, no_progress
from pipeline.support.stages import StageTimes
from pipeline.transcript import DetectedLanguage, SpokenWord, Transcript, TranscriptSpeaker

__all__ = ["CallAnalyzer"]

logger = logging.getLogger(__name__)

def _utc_now() -> datetime:
    return datetime.now(UTC)


class _Heard:
    """What the blocks of one call leave behind: words per transcribed stream (the mix, or each channel), overlap
    patches, the diarizer's session (calls that may be mono) and the manager leg's voice windows (stereo)."""

    def __init__(self, times: StageTimes) -> None:
        self.times = times
        self.by_stream: dict[int | None, list[AsrWord]] = {}
        self.overlap_patches: list[OverlapPatch] = []
        self.leg_patches: list[LegPatch] = []  # stereo_strategy mix_redecode: the client's turns, heard alone
        self.diarization: DiarizerSession | None = None
        self.sentence_voices: list[SentenceVoice] = []  # mono: short sentences' own voices (sentences.py)
        self.manager_voice: VoiceWindows | None = None
        self.dropped_hallucinations = 0
        self.language: tuple[str, float, float] | None = None
        self.gaps: list[AudioGap] = []  # damaged stretches, in time order


@dataclass(frozen=True)
class _Speakers:
    """Who spoke each word, and what the audio says about the speakers."""

    words: list[SpeakerWord]
    separation: Literal["channels", "diarized", "none"]
    listed: list[TranscriptSpeaker]
    backend: tuple[str, str]  # name, version
    warnings: list[str]
    voices: dict[str, list[float]] = field(default_factory=dict)
    voiceprint: VoiceprintMatch | None = None


class CallAnalyzer:
    """Analyses recordings with one loaded ASR model (and, for mono calls, one loaded diarizer).

    `transcribe` is the audio half: a recording in, its `Transcript` out. `analyze` adds the reading half,
    `derive(transcript, setup)`.

    Raises (from `transcribe` and `analyze`):
        AudioError: the recording cannot be decoded (the message names the file and the reason).
    """

    def __init__(self, settings: Settings, *, asr_model: AsrModel | None = None, setup: DeriveSetup | None = None,
                 concurrent_calls: int = 1, clock: Callable[[], datetime] = _utc_now) -> None:
        """
        Args:
            settings: all options.
            asr_model: an already loaded model (default: load `settings.model`).
            setup: what `analyze` derives results with (default: no lexicons, no scorecard, `settings`'
                options). The phrases of its lexicons named in `settings.hotword_lexicons` (the company's names)
                bias recognition, every lexicon's when `settings.lexicon_hotwords` is on.
            concurrent_calls: how many threads may transcribe with this model at once (a GPU batch worker).
            clock: the time a transcript is stamped with.

        Raises:
            ModelError, ConfigError: the ASR model or the configured diarizer cannot be loaded.
        """
        self.settings = settings
        self.setup = setup or DeriveSetup(**DeriveSetup.options_of(settings))
        self.clock = clock
        self.asr_options = settings.asr
        lexicons = self.setup.lexicons
        if lexicons and not settings.asr.hotwords:
            # The company's own names help whisper-base spell them (bench/README.md, hotwords.py), where the
            # settings name the company lexicon; every lexicon's phrases on request.
            prompt = lexicons.hotwords(lexicons=None if settings.lexicon_hotwords else settings.hotword_lexicons)
            if prompt:
                self.asr_options = self.asr_options.model_copy(update={"hotwords": prompt})
        if settings.asr.timestamp_tokens == "auto":
            # Timestamp tokens help the mix of a stereo call only where the client's turns are heard again on
            # their leg, and only without a hotword prompt, which they make whisper-base follow into worse
            # words (asr.py, AsrOptions.timestamp_tokens).
            stereo_too = settings.stereo_strategy == "mix_redecode" and not self.asr_options.hotwords
            self.asr_options = self.asr_options.model_copy(update={
                "timestamp_tokens": "always" if stereo_too else "mono"})
        if asr_model is None:
            resolved = models.resolve(settings.model, cache_dir=settings.models_dir)
            asr_model = load_asr(resolved.name, str(resolved.path), resolved.sha256, settings.device,
                                 settings.compute_type, settings.cpu_threads, concurrent_calls)
        self.asr_model = asr_model
        # Loaded now, so a missing pyannote pipeline is refused before any call is touched.
        self.diarizer = load_diarizer(settings.speakers)

    def analyze(self, path: str | Path | AudioInfo, **options) -> CallResult:
        """Analyse one recording: `derive(self.transcribe(path, **options), self.setup)`."""
        if self.setup.lexicons is not None:
            # Matching will need pymorphy3's dictionaries, which a compiled lexicon set did not load: load them
            # while the audio half runs (its decoding and recognition release the GIL), not after.
            warm_up_in_background()
        return derive(self.transcribe(path, **options), self.setup)

    def transcribe(
        self,
        path: str | Path | AudioInfo,
        *,
        call_id: str | None = None,
        direction: Literal["in", "out"] | None = None,
        manager_channel: Literal["left", "right"] | None = None,
        voiceprint: Voiceprint | None = None,
        collect_manager_voice: bool = False,
        hook: ProgressHook | None = None,
        times: StageTimes | None = None,
    ) -> Transcript:
        """The audio half of one call: decode, transcribe, tell the speakers apart.

        Args:
            path: the audio file, or what `audio.probe` found in it.
            call_id: the call's id in its source; default: derived from the file's sha256.
            direction: in (the client called) or out (the manager called), when known.
            manager_channel: overrides the configured stereo channel of the manager.
            voiceprint: the call's manager's voiceprint (speakers/voiceprints.py), evidence for the roles
                in a mono call.
            collect_manager_voice: in a stereo call, also embed the manager's leg (a voiceprint sample).
            hook: progress: `hook("asr", completed=seconds done, total=seconds of the call)`, then "done".
            times: where the call's seconds per stage are counted (decode, vad, asr, overlaps, redecode,
                speakers); the caller reads them after.
        """
        hook = hook or no_progress
        settings = self.settings
        info = path if isinstance(path, AudioInfo) else probe(path)
        manager_side = manager_channel or settings.manager_channel
        track = LevelTrack(2 if info.channels == 2 else 1)
        times = times if times is not None else StageTimes()
        heard = _Heard(times)
        total_s = info.declared_duration_s
        duration_s = 0.0
        for block in times.timed("decode", iter_blocks(info, block_s=settings.block_s)):
            self._hear_block(block, info, track, heard, manager_channel=channel_index(manager_side),
                             collect_manager_voice=collect_manager_voice)
            duration_s = block.start_s + block.duration_s
            hook("asr", completed=duration_s, total=max(total_s or 0.0, duration_s))
            del block  # not held while the next block is decoded: memory stays at one block
        layout = decide_layout(info, track)
        with times.stage("speakers"):
            if layout.layout == "stereo":
                speakers = self._stereo_speakers(heard, track, channel_index(manager_side))
            else:
                speakers = self._mono_speakers(heard, layout, voiceprint=voiceprint)
        manager_voice = heard.manager_voice if layout.layout == "stereo" else None
        if manager_voice is not None and not len(manager_voice):
            manager_voice = None  # the leg said nothing the voice encoder could use
        words = [SpokenWord(start=sw.word.start, end=sw.word.end, text=sw.word.text, speaker=sw.speaker,
                            prob=sw.word.prob, overlap=sw.overlap)
                 for sw in sorted(speakers.words, key=lambda sw: (sw.word.start, sw.word.end))]
        language = heard.language
        hook("done", completed=duration_s, total=duration_s)
        return Transcript(
            call_id=call_id or f"file-{info.sha256[:16]}",
            source=SourceInfo(uri=str(info.path), sha256=info.sha256, size_bytes=info.size_bytes,
                              container=info.container, codec=info.codec, sample_rate_hz=info.sample_rate_hz,
                              channels=info.channels),
            duration_s=round(duration_s, 3),
            channels=info.channels,
            layout=layout.layout,
            layout_reason=layout.reason,
            silent_channels=layout.silent_channels,
            language=settings.asr.language,
            detected_language=None if language is None else DetectedLanguage(
                language=language[0], probability=language[1], expected_probability=language[2]),
            direction=direction,
            manager_channel=channel_index(manager_side) if layout.layout == "stereo" else None,
            separation=speakers.separation,
            model=self._model_info(speakers.backend),
            audio_gaps=[AudioGapInfo(start=gap.start_s, end=gap.end_s, size_bytes=gap.size_bytes)
                        for gap in heard.gaps],
            speakers=speakers.listed,
            words=words,
            activity=(channel_activity(track.frame_db, self.settings.channels) if layout.layout == "stereo"
                      else None),
            voices=speakers.voices,
            manager_voice=(None if manager_voice is None
                           else [round(float(x), 6) for x in mean_voice(manager_voice.matrix())]),
            manager_speech_s=(0.0 if manager_voice is None
                              else round(len(manager_voice) / settings.speakers.voices.windows_per_s, 1)),
            voiceprint=speakers.voiceprint,
            audio_warnings=[f"damaged audio {gap.start_s:.1f}-{gap.end_s:.1f} s ({gap.size_bytes} bytes could "
                            "not be decoded): analysed as silence" for gap in heard.gaps],
            speaker_warnings=speakers.warnings,
            asr_warnings=([f"dropped {heard.dropped_hallucinations} phrase(s) Whisper invented over "
                           "non-speech audio"] if heard.dropped_hallucinations else []),
            analyzed_at=self.clock().isoformat(timespec="seconds"),
            callqa_version=__version__,
        )

    def _hear_block(self, block: AudioBlock, info: AudioInfo, track: LevelTrack, heard: _Heard, *,
                    manager_channel: int, collect_manager_voice: bool) -> None:
        """Everything one block of the call goes through: levels, recognition, the voices, and for stereo the
        client's turns heard again (mix_redecode) and the overlaps per leg."""
        times = heard.times
        block_levels = track.add(block)
        heard.gaps += [gap for gap in block.gaps if gap not in heard.gaps]  # one may span a cut
        # What the call looks like so far: mono files, dual mono and a dead leg are diarized.
        looks_mono = decide_layout(info, track).layout == "mono"
        known = len(heard.by_stream.get(None, []))
        self._transcribe_block(block, info, heard, mono=looks_mono)
        with times.stage("speakers"):
            self._follow_voices(block, heard, looks_mono=looks_mono, manager_channel=manager_channel,
                                collect_manager_voice=collect_manager_voice,
                                block_words=heard.by_stream.get(None, [])[known:])
        redecoded = None
        if self.settings.stereo_strategy == "mix_redecode" and not looks_mono:
            redecoded = 1 - manager_channel  # the client's leg
            with times.stage("redecode"):
                self._redecode_leg(block, block_levels, heard, channel=redecoded)
        if self._retranscribe_overlaps(info, track):
            # A re-decoded leg's words in an overlap come from its turns (apply_leg_patches), not once more.
            with times.stage("overlaps"):
                self._transcribe_overlaps(block, block_levels, heard,
                                          channels=tuple(channel for channel in (0, 1) if channel != redecoded))

    def _transcribe_block(self, block: AudioBlock, info: AudioInfo, heard: _Heard, *, mono: bool) -> None:
        options = self.asr_options
        streams: list[tuple[int | None, np.ndarray]]
        if info.channels == 2 and self.settings.stereo_strategy == "per_channel":
            streams = [(channel, block.samples[channel]) for channel in (0, 1)]
        else:
            streams = [(None, block.mix())]
        for channel, samples in streams:
            result = transcribe(self.asr_model, samples, offset_s=block.start_s, options=options, channel=channel,
                                mono=mono)
            heard.times.add("vad", result.vad_s)
            heard.times.add("asr", result.asr_s)
            heard.by_stream.setdefault(channel, []).extend(result.words)
            heard.dropped_hallucinations += len(result.dropped)
            if heard.language is None and result.words and result.language_probabilities:
                probabilities = result.language_probabilities
                top = max(probabilities, key=lambda language: probabilities[language])
                heard.language = (top, probabilities[top], probabilities.get(options.language, 0.0))

    def _retranscribe_overlaps(self, info: AudioInfo, track: LevelTrack) -> bool:
        correlation = track.dual_mono_correlation
        return (info.channels == 2 and self.settings.stereo_strategy in ("mix", "mix_redecode")
                and self.settings.channels.retranscribe_overlaps
                and (correlation is None or correlation < DUAL_MONO_THRESHOLD))

    def _transcribe_overlaps(self, block: AudioBlock, block_levels: np.ndarray, heard: _Heard, *,
                             channels: tuple[int, ...] = (0, 1)) -> None:
        options = self.settings.channels
        windows = find_overlap_windows(block_levels, offset_s=block.start_s, min_overlap_s=options.overlap_min_s,
                                       pad_s=options.overlap_window_pad_s, options=options)
        for start, end in windows:
            first = int(round((start - block.start_s) * SAMPLE_RATE_HZ))
            last = int(round((end - block.start_s) * SAMPLE_RATE_HZ))
            words = []
            for channel in channels:
                words += transcribe(self.asr_model, block.samples[channel, first:last], offset_s=start,
                                    options=self.asr_options, channel=channel).words
            heard.overlap_patches.append(OverlapPatch(start=start, end=end, words=words))
            logger.info("re-transcribed overlap %.1f-%.1f s per channel", start, end)

    def _redecode_leg(self, block: AudioBlock, block_levels: np.ndarray, heard: _Heard, *, channel: int) -> None:
        """Hear one leg's turns in this block again on that leg alone, packed into one stream (redecode.py)."""
        turns = leg_turns(block_levels, channel, offset_s=block.start_s, options=self.settings.channels)
        if not turns:
            return
        packed, placement = pack_turns(block.samples[channel], turns, offset_s=block.start_s,
                                       gap_s=self.settings.channels.redecode_gap_s)
        result = transcribe(self.asr_model, packed, options=self.asr_options, channel=channel)
        heard.leg_patches += unpack_words(result.words, placement, channel)
        heard.dropped_hallucinations += len(result.dropped)
        logger.info("re-decoded %d turn(s) of channel %d on the leg alone", len(turns), channel)

    def _follow_voices(self, block: AudioBlock, heard: _Heard, *, looks_mono: bool, manager_channel: int,
                       collect_manager_voice: bool, block_words: list[AsrWord]) -> None:
        """Feed the diarizer (and keep the voices of the block's short sentences) while the call looks mono, and
        embed the manager's leg while it looks stereo when a voiceprint sample is wanted."""
        if looks_mono and self.diarizer is not None:
            if heard.diarization is None:
                heard.diarization = self.diarizer.session()
            mix = block.mix()
            heard.diarization.add(mix, offset_s=block.start_s)
            heard.sentence_voices += embed_short_sentences(mix, block_words, offset_s=block.start_s,
                                                           max_s=self.settings.speakers.short_sentence_s)
        elif not looks_mono and collect_manager_voice:
            if heard.manager_voice is None:
                heard.manager_voice = VoiceWindows()
            heard.manager_voice.add(*embed_speech(block.samples[manager_channel], offset_s=block.start_s,
                                                       options=self.settings.speakers.voices))

    def _stereo_speakers(self, heard: _Heard, track: LevelTrack, manager_channel: int) -> _Speakers:
        """Each channel is one party; words of the mix go to the channel that carried them."""
        streams = heard.by_stream
        options = self.settings.channels
        if None in streams:
            by_level = attribute_by_channel(streams[None], track.frame_db, options)
            words = apply_overlap_patches(by_level, heard.overlap_patches, track.frame_db, options)
            words = apply_leg_patches(words, heard.leg_patches, track.frame_db, options)
        else:
            words = mark_overlaps([SpeakerWord(word=word, speaker=CHANNEL_SPEAKERS[channel], channel=channel)
                                   for channel in (0, 1) for word in streams.get(channel, [])],
                                  track.frame_db, options)
        return _Speakers(words=words, separation="channels",
                         listed=[TranscriptSpeaker(id=speaker, channel=index)
                                 for index, speaker in enumerate(CHANNEL_SPEAKERS)],
                         backend=("channels", f"{self.settings.stereo_strategy}/1"), warnings=[])

    def _mono_speakers(self, heard: _Heard, layout: ChannelLayout, *,
                       voiceprint: Voiceprint | None) -> _Speakers:
        """Diarize and give each word the speaker covering most of it; compare the voices with the manager's
        voiceprint (the roles are found later, by `derive`)."""
        streams = heard.by_stream
        if None in streams:
            asr_words = streams[None]
        else:
            # Transcribed per channel, but the legs turned out to be one mix (or one is dead): keep one copy.
            audible = [channel for channel in (0, 1) if channel not in layout.silent_channels] or [0]
            asr_words = streams.get(audible[0], [])
        undivided = _Speakers(words=single_speaker(asr_words), separation="none",
                              listed=[TranscriptSpeaker(id=MIXED_SPEAKER)], backend=("none", "1"),
                              warnings=["mono recording: speakers were not separated, roles are unknown"])
        if heard.diarization is None or not asr_words:
            return undivided
        try:
            diarization = heard.diarization.finish()
        except DiarizationError as error:
            logger.warning("diarization failed: %s", error)
            return replace(undivided, warnings=[f"mono recording: diarization failed ({error}); speakers were "
                                                "not separated, roles are unknown"])
        if not diarization.segments:
            return replace(undivided, backend=(diarization.backend, diarization.version))
        options = self.settings.speakers
        speaker_words = realign_to_sentences(assign_speakers(asr_words, diarization.segments),
                                             max_run_s=options.sentence_run_s)
        speaker_words = settle_short_sentences(speaker_words, heard.sentence_voices, diarization.voices,
                                               margin=options.voices.clear_margin)
        ordered = sorted(speaker_words, key=lambda sw: (sw.word.start, sw.word.end))
        speakers = list(dict.fromkeys(sw.speaker for sw in ordered))
        match = None
        if voiceprint is not None:
            match = VoiceprintMatch(name=voiceprint.manager_name or voiceprint.manager_id,
                                    similarity={speaker: float(np.dot(voice, voiceprint.embedding))
                                                for speaker, voice in diarization.voices.items()})
        return _Speakers(words=speaker_words, separation="diarized",
                         listed=[TranscriptSpeaker(id=speaker, confidence=diarization.confidence.get(speaker))
                                 for speaker in speakers],
                         backend=(diarization.backend, diarization.version),
                         warnings=[f"mono recording: {note}" for note in diarization.notes],
                         voices={speaker: [float(x) for x in voice] for speaker, voice in diarization.voices.items()},
                         voiceprint=match)

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
