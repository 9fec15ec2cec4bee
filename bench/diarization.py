"""Diarization of mono calls: speed per audio minute, and accuracy against ground truth, in one run.

On the nine sample calls' mono mixes (the stereo legs mixed), each backend's session is fed the decoded 16 kHz
audio in blocks, exactly as the analyzer does, and timed apart from ASR:

- `embedded` (the default): resemblyzer windows + k-means on the CPU.
- `pyannote`: pyannote.audio 4 from a pipeline folder. Without `--pyannote DIR` it is the stand-in built from
  pyannote's own classes with UNTRAINED weights (tests/pyannote_pipeline.py): the same architectures as
  community-1, so its time is pyannote's real cost on this machine, but its labels mean nothing and no accuracy
  is printed for it. On the GPU box pass the real folder (`--pyannote models/pyannote/community-1`).

Then the whole analysis of each call (ASR included) from its mono and its stereo file, for the share diarization
takes and for the role figures: DER (0.25 s collar) and words given the wrong role, mono against stereo; and the
mono file again with `speakers.sentence_run_s: 0` and `short_sentence_s: 0`, the words left where the diarizer's
segments put them (the baseline of the sentence rules, pipeline/speakers/sentences.py).

    .venv/bin/python bench/diarization.py [--pyannote DIR] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.analyze import CallAnalyzer  # noqa: E402
from pipeline.audio import SAMPLE_RATE_HZ, decode_all  # noqa: E402
from pipeline.derive import DeriveSetup  # noqa: E402
from pipeline.metrics import speech_intervals  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402
from pipeline.speakers import load_diarizer  # noqa: E402
from pipeline.speakers.diarization import PyannoteOptions, SpeakerOptions  # noqa: E402
from tests.conftest import SAMPLE_CALLS  # noqa: E402
from tests.evaluation import diarization_error_rate, role_errors  # noqa: E402

BLOCK_S = 600


def time_backend(diarizer, audio: list) -> float:
    """Seconds to diarize every call (sessions fed block by block), best of two."""
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        for samples in audio:
            session = diarizer.session()
            step = BLOCK_S * SAMPLE_RATE_HZ
            for first in range(0, len(samples), step):
                session.add(samples[first: first + step], offset_s=first / SAMPLE_RATE_HZ)
            session.finish()
        best = min(best, time.perf_counter() - started)
    return best


def hypothesis(result) -> list[tuple[str, float, float]]:
    return [(speaker, start, end) for speaker, spans in speech_intervals(result.words, 1.0).items()
            for start, end in spans]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pyannote", type=Path, help="a real pyannote pipeline folder (default: the stand-in)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    arguments = parser.parse_args()
    audio = [decode_all(call.mono)[1][0] for call in SAMPLE_CALLS]
    audio_min = sum(len(samples) for samples in audio) / SAMPLE_RATE_HZ / 60
    print(f"{len(SAMPLE_CALLS)} mono sample calls, {audio_min:.1f} min of 8 kHz audio decoded to 16 kHz")

    embedded = load_diarizer(SpeakerOptions(diarizer="embedded"))
    embedded.session().finish()  # load resemblyzer before the clock
    rows = [("embedded (resemblyzer + k-means, CPU)", time_backend(embedded, audio))]
    with tempfile.TemporaryDirectory() as workdir:
        folder = arguments.pyannote
        label = "pyannote (real pipeline)"
        if folder is None:
            from tests.pyannote_pipeline import build_untrained_pipeline

            folder = build_untrained_pipeline(Path(workdir) / "stand-in")
            # VBx averages empty slices on untrained weights: the stand-in's noise, not a finding.
            warnings.filterwarnings("ignore", "Mean of empty slice")
            warnings.filterwarnings("ignore", "invalid value encountered")
            label = "pyannote 4.0.7 architectures, untrained stand-in"
        device = {"cpu": "cpu", "cuda": "cuda", "auto": "auto"}[arguments.device]
        pyannote = load_diarizer(SpeakerOptions(diarizer="pyannote", pyannote=PyannoteOptions(
            pipeline_dir=folder, device=device)))
        rows.append((f"{label} ({pyannote.device})", time_backend(pyannote, audio[:1])
                     * audio_min / (len(audio[0]) / SAMPLE_RATE_HZ / 60)))
    print(f"{'backend':58} {'s per audio min':>15} {'s per audio hour':>16} {'x realtime':>10}")
    for name, seconds in rows:
        print(f"{name:58} {seconds / audio_min:15.2f} {seconds / audio_min * 60:16.1f} "
              f"{audio_min * 60 / seconds:10.1f}")
    if arguments.pyannote is None:
        print("(pyannote timed on the first call only and scaled; the stand-in's labels are not measured)")

    setup = DeriveSetup.load()
    analyzer = CallAnalyzer(load_settings(device="cpu"), setup=setup)
    # The baseline of the sentence rules (sentences.py): the words left where the diarizer's segments put them.
    unaligned = CallAnalyzer(load_settings(device="cpu", speakers=SpeakerOptions(sentence_run_s=0, short_sentence_s=0)),
                             setup=setup)
    mono_s = stereo_s = 0.0
    mono_wrong = mono_words = stereo_wrong = stereo_words = unaligned_wrong = 0
    print(f"\n{'call':13} {'manager voice':>13} {'DER':>6} {'wrong roles mono':>17} {'stereo':>8} {'confidence':>10} "
          f"{'mono, words as segmented':>25}")
    for call in SAMPLE_CALLS:
        started = time.perf_counter()
        mono = analyzer.analyze(call.mono, direction=call.direction)
        mono_s += time.perf_counter() - started
        as_segmented = unaligned.analyze(call.mono, direction=call.direction)
        unaligned_der = diarization_error_rate([(u.role, u.start, u.end) for u in call.utterances],
                                               hypothesis(as_segmented))
        wrong_unaligned = len(role_errors(as_segmented.words, call.utterances))
        unaligned_wrong += wrong_unaligned
        started = time.perf_counter()
        stereo = analyzer.analyze(call.stereo, manager_channel=call.manager_channel, direction=call.direction)
        stereo_s += time.perf_counter() - started
        der = diarization_error_rate([(u.role, u.start, u.end) for u in call.utterances], hypothesis(mono))
        wrong_mono, wrong_stereo = len(role_errors(mono.words, call.utterances)), len(role_errors(stereo.words,
                                                                                                  call.utterances))
        mono_wrong, mono_words = mono_wrong + wrong_mono, mono_words + len(mono.words)
        stereo_wrong, stereo_words = stereo_wrong + wrong_stereo, stereo_words + len(stereo.words)
        print(f"{call.call_id:13} {call.manager_voice:>13} {der:6.3f} {wrong_mono:>9}/{len(mono.words):<7} "
              f"{wrong_stereo:>3}/{len(stereo.words):<4} {mono.role_detection.confidence!s:>10} "
              f"{wrong_unaligned:>9}/{len(as_segmented.words):<4} DER {unaligned_der:.3f}")
    print(f"words with the wrong role: mono {mono_wrong}/{mono_words} ({mono_wrong / mono_words:.1%}), "
          f"stereo {stereo_wrong}/{stereo_words} ({stereo_wrong / stereo_words:.1%}); mono with the words where "
          f"the diarizer's segments put them (sentence_run_s and short_sentence_s 0) {unaligned_wrong}/{mono_words}")
    print(f"whole analysis, ASR included: mono {mono_s:.1f} s, stereo {stereo_s:.1f} s "
          f"(ratio mono / stereo {mono_s / stereo_s:.2f}); embedded diarization alone "
          f"{rows[0][1] / mono_s:.0%} of the mono analysis")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
