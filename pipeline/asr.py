"""Speech recognition with faster-whisper: Russian forced, VAD, word timestamps, batched decoding.

`load_asr()` loads a model once per process (cached; a Dask worker keeps it); `transcribe()` runs it on one
stretch of 16 kHz audio and returns typed words on the call's timeline. Whisper's known hallucinations on
silence and music ("Продолжение следует...", subtitle credits) are dropped, but only where the audio under them
holds no speech: a person who really says "продолжение следует" keeps their words.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.audio import SAMPLE_RATE_HZ
from pipeline.errors import ConfigError, ModelError
from pipeline.support.cores import available_cores

__all__ = [
    "AsrModel",
    "AsrOptions",
    "AsrWord",
    "DroppedPhrase",
    "Transcription",
    "batch_size_for",
    "ends_sentence",
    "load_asr",
    "resolve_device",
    "sentence_spans",
    "transcribe",
]

logger = logging.getLogger(__name__)


class AsrOptions(BaseModel):
    """Decoding settings. Defaults are the production settings for Russian calls.

    Attributes:
        language: forced language (auto-detection flips on short or noisy calls).
        beam_size: beam search width.
        batch_size: VAD chunks (up to 30 s each) decoded together by faster-whisper's BatchedInferencePipeline;
            None picks 4 on CPU and 16 on CUDA. On CPU a bigger batch is no faster but costs memory: the
            encoder's attention holds batch x 8 heads x 1500 x 1500 floats, 576 MB at 8 (bench/README.md).
        vad_threshold: Silero speech probability above which audio is speech.
        vad_min_silence_ms: a pause at least this long separates two speech chunks.
        hotwords: words to bias recognition towards in every window (company and product names).
        timestamp_tokens: when Whisper decodes its timestamp tokens inside each 30 s chunk (faster-whisper's
            batched default leaves them out): "auto" (default), "mono" (in mono calls only), "always", "never".
            Without them Whisper tends to end a chunk at a change of voice and skip what the second person said:
            on two real voices joined into one mono file it lost two of four sentences (lemma WER 0.54 against
            0.23 with them). "auto" is "mono" here; the analyzer makes it "always" for stereo calls under
            `stereo_strategy: mix_redecode` (on the nine stereo sample calls: lemma WER 0.188 -> 0.184, the
            client's short replies 0.135 -> 0.101, lexicon hit recall 0.949 -> 0.959, the one false ✘ gone, for
            6 % more compute), and leaves it "mono" under `mix` and `per_channel`, whose word times it made worse
            (the talk ratio off by 0.040 with the mix; 65 words on the wrong party transcribing each leg alone),
            and under a hotword prompt (the company's names: recall 0.904 with the tokens, 0.970 without).
            bench/README.md, stereo_strategies.py, hotwords.py.
        hallucination_min_speech: share of 32 ms VAD frames in a suspect phrase that must be speech to keep it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    language: str = "ru"
    beam_size: int = Field(5, ge=1)
    batch_size: int | None = Field(None, ge=1)
    vad_threshold: float = Field(0.5, gt=0, lt=1)
    vad_min_silence_ms: int = Field(160, ge=0)
    hotwords: str | None = None
    timestamp_tokens: Literal["auto", "mono", "always", "never"] = "auto"
    hallucination_min_speech: float = Field(0.3, ge=0, le=1)


class AsrWord(BaseModel):
    """One recognised word on the call's timeline; `channel` is set when a single channel was transcribed."""

    model_config = ConfigDict(frozen=True)

    start: float
    end: float
    text: str
    prob: float
    channel: int | None = None


class DroppedPhrase(BaseModel):
    model_config = ConfigDict(frozen=True)

    start: float
    end: float
    text: str
    speech_share: float


@dataclass(frozen=True)
class Transcription:
    """The words of one transcribed stretch, what was dropped, and which languages Whisper heard in it.

    `language_probabilities` maps language codes to probabilities averaged over the first batch of speech
    chunks (empty when there was no speech). `vad_s` and `asr_s` are the wall seconds it took: faster-whisper's
    Silero VAD up to the first features, then the rest (features, encoder, decoder, word alignment, the
    hallucination check).
    """

    words: list[AsrWord]
    dropped: list[DroppedPhrase]
    language_probabilities: dict[str, float]
    vad_s: float = 0.0
    asr_s: float = 0.0


@dataclass(frozen=True)
class AsrModel:
    """A loaded faster-whisper model and the facts the result JSON reports about it."""

    whisper: object  # faster_whisper.WhisperModel; typed loosely so importing this module stays cheap
    name: str
    path: str
    sha256: str | None
    device: str
    compute_type: str
    engine_version: str


def resolve_device(device: str, compute_type: str | None = None) -> tuple[str, str]:
    """`auto` picks CUDA (float16) when a CUDA device is visible, else the CPU with int8 weights."""
    import ctranslate2

    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"unknown device {device!r}: expected one of auto, cpu, cuda")
    cuda_devices = ctranslate2.get_cuda_device_count()
    if device == "cuda" and cuda_devices == 0:
        raise ConfigError("device cuda requested but no CUDA device is visible (use --device auto or cpu)")
    chosen = "cuda" if device == "cuda" or (device == "auto" and cuda_devices > 0) else "cpu"
    return chosen, compute_type or ("float16" if chosen == "cuda" else "int8")


@functools.lru_cache(maxsize=4)
def load_asr(model_name: str, model_path: str, sha256: str | None, device: str = "auto",
             compute_type: str | None = None, cpu_threads: int = 0, concurrent_calls: int = 1) -> AsrModel:
    """Load a CTranslate2 Whisper model directory (see `models.resolve`), once per process and settings.

    Args:
        model_name: the name reported in results.
        model_path: the model directory.
        sha256: the weights' hash, reported in results (None when unknown).
        device: auto, cpu or cuda.
        compute_type: CTranslate2 compute type; None picks int8 on CPU, float16 on CUDA.
        cpu_threads: threads on CPU; 0 uses every core this process may run on.
        concurrent_calls: CTranslate2 workers, so that this many threads can transcribe at once.

    Raises:
        ModelError: the directory does not load.
    """
    import faster_whisper

    chosen_device, chosen_type = resolve_device(device, compute_type)
    threads = cpu_threads or available_cores()
    try:
        whisper = faster_whisper.WhisperModel(model_path, device=chosen_device, compute_type=chosen_type,
                                              cpu_threads=threads, num_workers=concurrent_calls,
                                              local_files_only=True)
    except (RuntimeError, ValueError, OSError) as error:
        raise ModelError(f"could not load ASR model {model_name} from {model_path}: {error}") from error
    logger.info("loaded ASR model %s on %s (%s, %d threads)", model_name, chosen_device, chosen_type, threads)
    return AsrModel(whisper=whisper, name=model_name, path=model_path, sha256=sha256, device=chosen_device,
                    compute_type=chosen_type, engine_version=faster_whisper.__version__)


# Phrases Whisper is known to invent on silence, hold music and beeps in Russian audio (it learnt them from
# subtitle credits). Matched on one sentence at a time, case-insensitive, ё as е, punctuation removed.
HALLUCINATION_PATTERNS = tuple(re.compile(pattern) for pattern in (
    r"\bпродолжение следует\b",
    r"\bсубтитр\w*\b.*\b(сделал|делал|создал|создавал|подготовил|подогнал|сообществ|amara|dimatorzok)",
    r"\b(редактор|корректор) субтитров\b",
    r"\bкорректор [а-я]\b",
    r"\bdimatorzok\b",
    r"\bспасибо за (просмотр|внимание)\b.*\b(подписывайтесь|ставьте)\b",
    r"\bподписывайтесь на (наш )?канал\b",
    r"\bставьте лайки\b",
))

_SENTENCE_END = re.compile(r"[.!?…]+[\"»”)]*$")
_NON_WORD = re.compile(r"[^\w\s]")


def _normalise(text: str) -> str:
    return " ".join(_NON_WORD.sub(" ", text.lower().replace("ё", "е")).split())


def ends_sentence(text: str) -> bool:
    """Whether a recognised word ends a sentence (. ! ? or …, maybe before a closing quote or bracket)."""
    return _SENTENCE_END.search(text) is not None


def sentence_spans(words: Sequence[AsrWord], *, pause_s: float | None = None) -> list[list[int]]:
    """The words' indices, sentence by sentence (`words` in the order Whisper wrote them): up to a word that
    `ends_sentence`, or, with `pause_s`, up to a pause at least that long."""
    sentences: list[list[int]] = []
    current: list[int] = []
    for index, word in enumerate(words):
        if current and pause_s is not None and word.start - words[current[-1]].end >= pause_s:
            sentences.append(current)
            current = []
        current.append(index)
        if ends_sentence(word.text):
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return sentences


def _sentences(words: list[AsrWord]) -> list[list[AsrWord]]:
    return [[words[index] for index in span] for span in sentence_spans(words)]


def _speech_share(samples: np.ndarray, start_s: float, end_s: float, threshold: float) -> float:
    """Share of Silero VAD frames between start_s and end_s (block-relative) that are speech."""
    from faster_whisper.vad import get_vad_model

    window = 512
    first = max(0, int((start_s - 0.1) * SAMPLE_RATE_HZ))
    last = min(len(samples), int((end_s + 0.1) * SAMPLE_RATE_HZ))
    excerpt = samples[first:last].astype(np.float32)
    if len(excerpt) < window:
        return 0.0
    excerpt = np.pad(excerpt, (0, (-len(excerpt)) % window))
    probabilities = np.asarray(get_vad_model()(excerpt)).reshape(-1)
    return float((probabilities >= threshold).mean())


def _drop_unbacked_hallucinations(words: list[AsrWord], samples: np.ndarray, offset_s: float,
                                  options: AsrOptions) -> tuple[list[AsrWord], list[DroppedPhrase]]:
    kept: list[AsrWord] = []
    dropped: list[DroppedPhrase] = []
    for sentence in _sentences(words):
        text = " ".join(word.text for word in sentence)
        normalised = _normalise(text)
        if any(pattern.search(normalised) for pattern in HALLUCINATION_PATTERNS):
            start, end = sentence[0].start, sentence[-1].end
            share = _speech_share(samples, start - offset_s, end - offset_s, options.vad_threshold)
            if share < options.hallucination_min_speech:
                dropped.append(DroppedPhrase(start=start, end=end, text=text, speech_share=round(share, 3)))
                continue
        kept.extend(sentence)
    return kept, dropped


def batch_size_for(device: str, options: AsrOptions) -> int:
    """The batch size `transcribe` uses on `device` (see AsrOptions.batch_size)."""
    return options.batch_size or (16 if device == "cuda" else 4)


def _fixed_order_features(whisper):
    """faster-whisper's log-Mel features, computed the same way whatever BLAS's thread count.

    The library applies its mel filter bank with `@`, that is OpenBLAS's sgemm, which splits the product between
    its threads and sums each output in an order that depends on the split: features one float32 ULP apart
    between `callqa analyze` (BLAS on every core) and a Dask worker (OPENBLAS_NUM_THREADS=1), and on an AMD EPYC
    beam search turned that into other words for the same call (issue 11). `np.einsum` without optimisation sums
    in one fixed order in a single thread: 8 ms per 30 s chunk, nothing next to the encoder.
    """
    from faster_whisper.feature_extractor import FeatureExtractor

    class FixedOrderFeatures(FeatureExtractor):
        # When the first features were asked for: the batched pipeline runs its VAD before (see `transcribe`).
        first_call_at: float | None = None

        # The body of faster-whisper 1.2.1's FeatureExtractor.__call__ with the one product replaced;
        # tests/test_asr.py checks that it still gives the library's features.
        def __call__(self, waveform: np.ndarray, padding: int = 160, chunk_length: int | None = None) -> np.ndarray:
            if self.first_call_at is None:
                self.first_call_at = time.perf_counter()
            if chunk_length is not None:
                self.n_samples = chunk_length * self.sampling_rate
                self.nb_max_frames = self.n_samples // self.hop_length
            waveform = np.pad(waveform.astype(np.float32, copy=False), (0, padding)) if padding else waveform
            window = np.hanning(self.n_fft + 1)[:-1].astype(np.float32)
            spectrum = self.stft(waveform.astype(np.float32, copy=False), self.n_fft, self.hop_length,
                                 window=window, return_complex=True).astype(np.complex64)
            magnitudes = np.abs(spectrum[..., :-1]) ** 2  # (n_fft // 2 + 1, frames)
            mel = np.einsum("mf,...ft->...mt", self.mel_filters, magnitudes, optimize=False)  # (n_mels, frames)
            log_spec = np.log10(np.clip(mel, a_min=1e-10, a_max=None))
            log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
            return (log_spec + 4.0) / 4.0

    return FixedOrderFeatures(**whisper.feat_kwargs)


class _EncoderTap:
    """Stands in for a WhisperModel: keeps the first encoder output the batched pipeline computes, and gives it
    features that do not depend on the BLAS thread count (`_fixed_order_features`).

    With the language forced, faster-whisper never asks which language it hears; asking separately
    (`WhisperModel.detect_language`) costs a second encoder pass, 13 % of the whole analysis of a call on CPU.
    The encoder output of the first batch is already there, and the language head on it is nearly free.
    Everything but `encode` and `feature_extractor` goes straight to the real model.
    """

    def __init__(self, whisper) -> None:
        self._whisper = whisper
        self.first_encoder_output = None
        self.feature_extractor = _fixed_order_features(whisper)

    def __getattr__(self, name: str):
        return getattr(self._whisper, name)

    def encode(self, features):
        output = self._whisper.encode(features)
        if self.first_encoder_output is None:
            self.first_encoder_output = output
        return output


def _language_probabilities(whisper, encoder_output) -> dict[str, float]:
    if encoder_output is None:
        return {}
    per_chunk = whisper.model.detect_language(encoder_output)
    totals: dict[str, float] = {}
    for chunk in per_chunk:
        for token, probability in chunk:
            language = token[2:-2]  # "<|ru|>" -> "ru"
            totals[language] = totals.get(language, 0.0) + probability / len(per_chunk)
    return totals


def transcribe(model: AsrModel, samples: np.ndarray, *, offset_s: float = 0.0, options: AsrOptions | None = None,
               channel: int | None = None, mono: bool = False) -> Transcription:
    """Transcribe one stretch of a call.

    Args:
        model: from `load_asr`.
        samples: (n,) float32 audio at 16 kHz.
        offset_s: where `samples` starts in the call; word times are shifted by it.
        options: decoding settings.
        channel: recorded on every word when `samples` is a single channel of a stereo call.
        mono: `samples` is a mono call (for `options.timestamp_tokens`).

    Returns:
        The words in time order, the hallucinated phrases that were dropped, and the languages heard.
    """
    from faster_whisper import BatchedInferencePipeline

    options = options or AsrOptions()
    started = time.perf_counter()
    tap = _EncoderTap(model.whisper)
    # A new pipeline object per call: BatchedInferencePipeline keeps per-transcription state
    # (last_speech_timestamp), so sharing one between threads would mix two calls' timings.
    pipeline = BatchedInferencePipeline(tap)
    segments, _info = pipeline.transcribe(
        samples.astype(np.float32, copy=False),
        language=options.language,
        beam_size=options.beam_size,
        batch_size=batch_size_for(model.device, options),
        word_timestamps=True,
        condition_on_previous_text=False,
        without_timestamps=not (options.timestamp_tokens == "always"
                                or (options.timestamp_tokens in ("auto", "mono") and mono)),
        vad_filter=True,
        vad_parameters={"threshold": options.vad_threshold, "min_silence_duration_ms": options.vad_min_silence_ms},
        hotwords=options.hotwords,
    )
    words = [
        AsrWord(start=round(word.start + offset_s, 3), end=round(word.end + offset_s, 3), text=word.word.strip(),
                prob=round(word.probability, 3), channel=channel)
        for segment in segments
        for word in (segment.words or [])
        if word.word.strip()
    ]
    kept, dropped = _drop_unbacked_hallucinations(words, samples, offset_s, options)
    for phrase in dropped:
        logger.info("dropped hallucination %r at %.1f s (speech share %.2f)", phrase.text, phrase.start,
                    phrase.speech_share)
    language_probabilities = _language_probabilities(model.whisper, tap.first_encoder_output)
    finished = time.perf_counter()
    # No features means the VAD found no speech: the whole stretch was VAD.
    vad_done = tap.feature_extractor.first_call_at or finished
    return Transcription(words=kept, dropped=dropped, language_probabilities=language_probabilities,
                         vad_s=vad_done - started, asr_s=finished - vad_done)
