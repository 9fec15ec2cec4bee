"""The audio copy the nightly run keeps (pipeline/audio_copy.py): its size per channel per minute against the
originals, and how fast it is made.

Groups of files, each encoded with `encode_audio_copy` as the run does (decode, resample to 8 kHz for a
recording sampled at 8 kHz or less, else 16 kHz, Opus at 16 kbps per channel in WebM):

- the sample calls as WAV, 8 kHz 16-bit PCM, the way a PBX stores them (rendered from tests/data/calls into a
  temporary folder before the clock starts);
- the sample calls as shipped (MP3, 8 kHz: 32 kbps stereo, 24 kbps mono);
- real speech (tests/data/real-speech, else /work/shared/data/real-speech): Common Voice MP3 at 48 kHz and
  telephone FLAC at 8 kHz.

KB are 1000 bytes. The goal of the issue: at most 130 KB per channel per minute. Speed: seconds of audio per
second of encoding, decoding included, on one thread.

    .venv/bin/python bench/audio_copy.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.audio import probe  # noqa: E402
from pipeline.audio_copy import encode_audio_copy  # noqa: E402
from tests.audio_write import as_pcm_wav  # noqa: E402

CALLS = REPO / "tests" / "data" / "calls"
REAL_SPEECH = next((folder for folder in (REPO / "tests" / "data" / "real-speech",
                                          Path("/work/shared/data/real-speech")) if folder.is_dir()), None)
GOAL_KB = 130.0



def measure(name: str, files: list[Path], scratch: Path) -> dict:
    original = copy = channel_minutes = audio_s = encode_s = 0.0
    worst = 0.0
    for path in files:
        info = probe(path)
        channels = 2 if info.channels == 2 else 1
        started = time.perf_counter()
        made = encode_audio_copy(path, scratch / "copy.webm")
        encode_s += time.perf_counter() - started
        minutes = made.duration_s / 60
        original += info.size_bytes
        copy += made.size_bytes
        channel_minutes += channels * minutes
        audio_s += made.duration_s
        worst = max(worst, made.size_bytes / 1000 / channels / minutes)
    return {"group": name, "files": len(files), "minutes": audio_s / 60, "original": original / 1000 / channel_minutes,
            "copy": copy / 1000 / channel_minutes, "worst": worst, "speed": audio_s / encode_s}


def main() -> None:
    groups: list[tuple[str, list[Path]]] = []
    with tempfile.TemporaryDirectory(prefix="callqa-bench-copy-") as folder:
        scratch = Path(folder)
        for layout in ("stereo", "mono"):
            shipped = sorted(CALLS.glob(f"*.{layout}.mp3"))
            wavs = [as_pcm_wav(path, scratch / f"{path.stem}.wav") for path in shipped]
            groups += [(f"sample calls, {layout}, WAV 8 kHz PCM", wavs), (f"sample calls, {layout}, MP3 as shipped",
                                                                           shipped)]
        if REAL_SPEECH is not None:
            groups += [("real speech, Common Voice MP3 48 kHz", sorted(REAL_SPEECH.glob("common_voice_ru/*.mp3"))),
                       ("real speech, telephone FLAC 8 kHz", sorted(REAL_SPEECH.glob("telephony_tone/*.flac")))]
        rows = [measure(name, files, scratch) for name, files in groups if files]
    print("| files | minutes | original KB/ch/min | copy KB/ch/min (worst file) | copy / original | encode speed |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['group']} ({row['files']}) | {row['minutes']:.1f} | {row['original']:.0f} | "
              f"{row['copy']:.1f} ({row['worst']:.1f}) | {row['copy'] / row['original']:.2f} | {row['speed']:.0f}x |")
    worst = max(row["worst"] for row in rows)
    print(f"\nworst file: {worst:.1f} KB per channel per minute (goal: at most {GOAL_KB:g}): "
          f"{'met' if worst <= GOAL_KB else 'NOT met'}")


if __name__ == "__main__":
    main()
