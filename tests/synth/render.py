"""Render the scripted dialogues in dialogues.yaml into telephone-like call recordings with ground truth.

Needs Debian's `festival`, `festvox-ru` and `sox` (apt-get install -y festival festvox-ru sox); mp3 is
encoded with PyAV.
The rendered sample calls are committed under tests/data/calls/, so tests and the demo need none of these tools;
this script is for making more or changing them:

    .venv/bin/python -m tests.synth.render --out tests/data/calls

For every dialogue it writes `<id>.stereo.mp3` (one party per channel, 8 kHz, as a PBX records it),
`<id>.mono.mp3` (the same call mixed down) and `<id>.truth.json`: who said what, when (seconds on the call's
timeline, the span of actual speech in each turn, without festival's leading and trailing silence); and a
`manifest.csv` for `callqa run` (call ids, the manager's channel, direction, start times on 2026-11-28).

What makes the audio telephone-like: festival's Russian voice for one party and the same voice shifted up by 450
cents for the other, pauses of varying length, interruptions where the script asks for them, a little cross-talk
of each party into the other's leg, line noise, a 300-3400 Hz band and 8 kHz mp3.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import tempfile
import wave
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import yaml

from tests.audio_write import write_audio

SAMPLE_RATE_HZ = 16_000
TELEPHONE_RATE_HZ = 8_000
HIGH_VOICE_CENTS = 450
LEAD_IN_S = 0.8
TAIL_S = 1.0
CROSSTALK_GAIN = 0.03  # about -30 dB of the other party leaking into each leg
CROSSTALK_DELAY_S = 0.02
NOISE_RMS = 10 ** (-54 / 20)
MANAGER_LEVEL_DBFS = -20.0
CLIENT_LEVEL_DBFS = -23.0
DIALOGUES_FILE = Path(__file__).with_name("dialogues.yaml")
REQUIRED_TOOLS = ("text2wave", "sox")


def missing_tools() -> list[str]:
    """Names of the external programs this renderer needs that are not on PATH."""
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


def load_dialogues(path: Path = DIALOGUES_FILE) -> list[dict]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["dialogues"]


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        if wav.getframerate() != SAMPLE_RATE_HZ or wav.getnchannels() != 1:
            raise RuntimeError(f"{path}: expected 16 kHz mono from festival/sox")
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0


def _write_wav(path: Path, samples: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> None:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate_hz)
        wav.writeframes(pcm.tobytes())


def _speak(text: str, *, high_voice: bool, workdir: Path, index: int) -> np.ndarray:
    """Festival's Russian voice saying `text`, trimmed to the speech, as float32 at 16 kHz."""
    text_file = workdir / f"u{index}.txt"
    raw_wav = workdir / f"u{index}.raw.wav"
    text_file.write_text(text + "\n", encoding="utf-8")
    subprocess.run(
        ["text2wave", "-eval", "(voice_msu_ru_nsh_clunits)", str(text_file), "-o", str(raw_wav)],
        check=True,
        capture_output=True,
    )
    if high_voice:
        shifted = workdir / f"u{index}.high.wav"
        subprocess.run(["sox", str(raw_wav), str(shifted), "pitch", str(HIGH_VOICE_CENTS)], check=True)
        raw_wav = shifted
    return _trim_silence(_read_wav(raw_wav))


def _trim_silence(samples: np.ndarray, frame: int = 160, below_peak_db: float = 35.0) -> np.ndarray:
    """Cut leading and trailing frames quieter than the loudest frame by more than `below_peak_db`."""
    n_frames = len(samples) // frame
    power = (samples[: n_frames * frame].reshape(n_frames, frame) ** 2).mean(axis=1)
    level_db = 10 * np.log10(power + 1e-12)
    voiced = np.flatnonzero(level_db > level_db.max() - below_peak_db)
    return samples[voiced[0] * frame : (voiced[-1] + 1) * frame]


def _scale_to(samples: np.ndarray, level_dbfs: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(samples**2)))
    return samples * (10 ** (level_dbfs / 20) / max(rms, 1e-9))


def compose(dialogue: dict, utterances: list[np.ndarray], seed: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """Lay the utterances on one timeline; returns (truth, manager leg, client leg) at 16 kHz."""
    rng = np.random.default_rng(seed)
    placed = []
    cursor_s = LEAD_IN_S
    previous_end_s = 0.0
    for index, (turn, samples) in enumerate(zip(dialogue["turns"], utterances)):
        role = "manager" if "m" in turn else "client"
        text = turn.get("m", turn.get("c"))
        if index == 0:
            start_s = LEAD_IN_S
        else:
            gap_s = float(turn["gap"]) if "gap" in turn else float(rng.uniform(0.35, 1.1))
            start_s = previous_end_s + gap_s
        end_s = start_s + len(samples) / SAMPLE_RATE_HZ
        placed.append({"role": role, "start": round(start_s, 3), "end": round(end_s, 3), "text": text})
        previous_end_s = max(previous_end_s, end_s)
        cursor_s = max(cursor_s, end_s)
    total = int((cursor_s + TAIL_S) * SAMPLE_RATE_HZ)
    legs = {"manager": np.zeros(total, np.float32), "client": np.zeros(total, np.float32)}
    for turn, samples in zip(placed, utterances):
        level = MANAGER_LEVEL_DBFS if turn["role"] == "manager" else CLIENT_LEVEL_DBFS
        first = int(round(turn["start"] * SAMPLE_RATE_HZ))
        legs[turn["role"]][first : first + len(samples)] += _scale_to(samples, level)
    delay = int(CROSSTALK_DELAY_S * SAMPLE_RATE_HZ)
    manager_leg = legs["manager"] + CROSSTALK_GAIN * np.roll(legs["client"], delay)
    client_leg = legs["client"] + CROSSTALK_GAIN * np.roll(legs["manager"], delay)
    manager_leg += rng.normal(0, NOISE_RMS, total).astype(np.float32)
    client_leg += rng.normal(0, NOISE_RMS, total).astype(np.float32)
    truth = {
        "call_id": dialogue["id"],
        "business": dialogue["business"],
        "direction": dialogue["direction"],
        "manager_channel": dialogue["manager_channel"],
        "manager_voice": dialogue["manager_voice"],
        "duration_s": round(total / SAMPLE_RATE_HZ, 3),
        "utterances": placed,
    }
    return truth, manager_leg, client_leg


def _telephone(leg: np.ndarray, workdir: Path, name: str) -> np.ndarray:
    """The leg band-limited to 300-3400 Hz and resampled to 8 kHz (sox), as float32."""
    wide = workdir / f"{name}.16k.wav"
    narrow = workdir / f"{name}.8k.wav"
    _write_wav(wide, leg)
    subprocess.run(["sox", str(wide), str(narrow), "sinc", "300-3400", "rate", "8000"], check=True)
    with wave.open(str(narrow), "rb") as wav:
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0


def render_dialogue(dialogue: dict, out_dir: Path, *, seed: int) -> dict:
    """Render one dialogue into out_dir; returns its ground truth."""
    manager_high = dialogue["manager_voice"] == "high"
    with tempfile.TemporaryDirectory(prefix="callqa-render-") as tmp:
        workdir = Path(tmp)
        utterances = []
        for index, turn in enumerate(dialogue["turns"]):
            is_manager = "m" in turn
            text = turn["m"] if is_manager else turn["c"]
            high_voice = manager_high if is_manager else not manager_high
            utterances.append(_speak(text, high_voice=high_voice, workdir=workdir, index=index))
        truth, manager_leg, client_leg = compose(dialogue, utterances, seed)
        manager_8k = _telephone(manager_leg, workdir, "manager")
        client_8k = _telephone(client_leg, workdir, "client")
    left, right = (manager_8k, client_8k) if dialogue["manager_channel"] == "left" else (client_8k, manager_8k)
    stem = dialogue["id"]
    write_audio(out_dir / f"{stem}.stereo.mp3", np.stack([left, right]), TELEPHONE_RATE_HZ, bitrate=32_000)
    write_audio(out_dir / f"{stem}.mono.mp3", (left + right) / 2, TELEPHONE_RATE_HZ, bitrate=24_000)
    truth_text = json.dumps(truth, ensure_ascii=False, indent=2) + "\n"
    (out_dir / f"{stem}.truth.json").write_text(truth_text, encoding="utf-8")
    return truth


MANIFEST_DAY = datetime(2026, 11, 28, 9, 0, tzinfo=timezone(timedelta(hours=3)))  # Moscow time


def write_manifest(out_dir: Path, dialogues: list[dict]) -> Path:
    """manifest.csv for the rendered calls (pipeline/sources/manifest.py): ids, sides, directions, and start
    times spread over one working day, so that `callqa run --date 2026-11-28` finds them."""
    rows = []
    for index, dialogue in enumerate(dialogues):
        started = (MANIFEST_DAY + timedelta(minutes=37 * index)).isoformat()
        for layout in ("stereo", "mono"):
            rows.append({"file": f"{dialogue['id']}.{layout}.mp3", "call_id": f"{dialogue['id']}-{layout}",
                         "direction": dialogue["direction"], "started_at": started,
                         "manager_channel": dialogue["manager_channel"] if layout == "stereo" else "",
                         "manager": dialogue.get("manager_id", ""), "manager_name": dialogue.get("manager_name", ""),
                         "deal_id": dialogue.get("deal_id", "")})
    path = out_dir / "manifest.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the rendered calls")
    parser.add_argument("--only", nargs="*", help="dialogue ids to render (default: all)")
    parser.add_argument("--dialogues", type=Path, default=DIALOGUES_FILE)
    args = parser.parse_args(argv)
    missing = missing_tools()
    if missing:
        parser.error(f"missing programs: {', '.join(missing)} (apt-get install -y festival festvox-ru sox)")
    args.out.mkdir(parents=True, exist_ok=True)
    for seed, dialogue in enumerate(load_dialogues(args.dialogues)):
        if args.only and dialogue["id"] not in args.only:
            continue
        truth = render_dialogue(dialogue, args.out, seed=seed)
        print(f"{truth['call_id']}: {truth['duration_s']:.1f} s, {len(truth['utterances'])} turns")
    print(f"wrote {write_manifest(args.out, load_dialogues(args.dialogues))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
