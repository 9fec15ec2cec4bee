"""Writing audio in any container/codec PyAV can encode (mp3, ogg/opus, m4a/aac, flac, wav): for the sample-call
generator, the tests, and the Bitrix24 sandbox (which serves recordings the way a PBX lays them out)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np

# container format and codec for each file suffix
FORMATS = {
    ".mp3": ("mp3", "libmp3lame"),
    ".ogg": ("ogg", "libopus"),
    ".opus": ("ogg", "libopus"),
    ".m4a": ("mp4", "aac"),
    ".flac": ("flac", "flac"),
    ".wav": ("wav", "pcm_s16le"),
}
# channel layouts by channel count (a PBX that records 5.1 is a test case, not a customer)
LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}
# Opus only runs at these rates; other rates are resampled to 48 kHz by the encoder setup below.
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


__all__ = ["FORMATS", "LAYOUTS", "write_audio", "write_audio_chunks"]


def write_audio(path: str | Path, samples: np.ndarray, sample_rate_hz: int, *, bitrate: int | None = None,
                codec: str | None = None) -> Path:
    """Encode `samples` ((channels, n) or (n,) float32 in [-1, 1]) into `path`, format chosen by its suffix and
    the codec by the suffix too unless `codec` names one (e.g. "pcm_alaw" in a .wav)."""
    samples = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    return write_audio_chunks(path, [samples], sample_rate_hz, channels=samples.shape[0], bitrate=bitrate,
                              codec=codec)


def write_audio_chunks(path: str | Path, chunks: Iterable[np.ndarray], sample_rate_hz: int, *, channels: int,
                       bitrate: int | None = None, codec: str | None = None) -> Path:
    """`write_audio` for a recording that arrives in pieces ((channels, n) each): hours of audio in little memory."""
    path = Path(path)
    container_format, default_codec = FORMATS[path.suffix.lower()]
    codec = codec or default_codec
    layout = LAYOUTS[channels]
    rate = sample_rate_hz
    if codec == "libopus" and rate not in OPUS_RATES:
        rate = 48000
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        if bitrate:
            stream.bit_rate = bitrate
        encoder_format = stream.codec_context.format.name
        resampler = av.AudioResampler(format=encoder_format, layout=layout, rate=rate)
        frame_size = stream.codec_context.frame_size or 1024
        fifo = av.AudioFifo()

        def encode(frames) -> None:
            for frame in frames:
                fifo.write(frame)
                while fifo.samples >= frame_size:
                    container.mux(stream.encode(fifo.read(frame_size)))

        for chunk in chunks:
            chunk = np.ascontiguousarray(np.atleast_2d(np.asarray(chunk, dtype=np.float32)))
            source = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            source.sample_rate = sample_rate_hz
            source.pts = None
            encode(resampler.resample(source))
        encode(resampler.resample(None))
        if fifo.samples:
            container.mux(stream.encode(fifo.read()))
        container.mux(stream.encode(None))
    return path


def as_pcm_wav(recording: Path, wav: Path) -> Path:
    """The recording as a PBX would have stored it: 16-bit PCM WAV at its own rate (8 kHz for the sample calls)."""
    with av.open(str(recording)) as container:
        stream = container.streams.audio[0]
        rate, layout = stream.rate, stream.layout.name
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        chunks = [out.to_ndarray() for frame in container.decode(stream) for out in resampler.resample(frame)]
    return write_audio(wav, np.concatenate(chunks, axis=1), rate)
