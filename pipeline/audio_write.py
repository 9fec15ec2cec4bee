"""Writing audio in any container/codec PyAV can encode (mp3, ogg/opus, m4a/aac, flac, wav): for the sample-call
generator, the tests, and the Bitrix24 sandbox (which serves recordings the way a PBX lays them out)."""

from __future__ import annotations

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
# Opus only runs at these rates; other rates are resampled to 48 kHz by the encoder setup below.
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


__all__ = ["FORMATS", "write_audio"]


def write_audio(path: str | Path, samples: np.ndarray, sample_rate_hz: int, *, bitrate: int | None = None) -> Path:
    """Encode `samples` ((channels, n) or (n,) float32 in [-1, 1]) into `path`, format chosen by its suffix."""
    path = Path(path)
    container_format, codec = FORMATS[path.suffix.lower()]
    samples = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    channels = samples.shape[0]
    layout = "stereo" if channels == 2 else "mono"
    rate = sample_rate_hz
    if codec == "libopus" and rate not in OPUS_RATES:
        rate = 48000
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        if bitrate:
            stream.bit_rate = bitrate
        encoder_format = stream.codec_context.format.name
        resampler = av.AudioResampler(format=encoder_format, layout=layout, rate=rate)
        source = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=layout)
        source.sample_rate = sample_rate_hz
        frame_size = stream.codec_context.frame_size or 1024
        fifo = av.AudioFifo()
        for frame in resampler.resample(source) + resampler.resample(None):
            fifo.write(frame)
            while fifo.samples >= frame_size:
                container.mux(stream.encode(fifo.read(frame_size)))
        if fifo.samples:
            container.mux(stream.encode(fifo.read()))
        container.mux(stream.encode(None))
    return path
