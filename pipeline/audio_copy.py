"""The call's audio for people to listen to: a compressed copy kept in the store, or the recording at its source.

The nightly run keeps a copy of each recording it transcribes, `calls/<call_id>/audio.webm`: Opus in WebM
(`audio/webm; codecs=opus`, which browsers play and seek), about 16 kbps per channel, so about 120 KB per channel
per minute (bench/README.md), with its seek index (cues) at the front of the file so that a player seeking over
HTTP range requests finds any moment in one or two reads. A recording whose source is a folder or an S3 bucket
could be played from there, but a Bitrix24 recording cannot be read in ranges, and sources go away.

    encode_audio_copy(recording, target)        decode, resample, encode as a stream: memory stays small
    store_audio_copy(recording, store, call_id) the same, into the store
    BackgroundCopy(recording)                   the same in a thread, beside the transcription (the nightly run)
    open_call_audio(store, call_id, ...)        a `CallAudio` to read in ranges, or `NoAudio` saying why not

The copy keeps the recording's channels (stereo: one party per channel) and its timeline: a damaged stretch the
decoder cannot read becomes silence of its length, as in the analysis, so the transcript's word times stay the
moments of the copy.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING

import av

from pipeline.audio import SAMPLE_RATE_HZ, iter_frames, probe
from pipeline.errors import AudioError, CallqaError
from pipeline.stores.base import ArtifactStore, StoreError, audio_copy_key
from pipeline.support.s3 import S3Location, S3Settings, make_client

if TYPE_CHECKING:
    from pipeline.settings import Settings

__all__ = ["AUDIO_COPY_CONTENT_TYPE", "KBPS_PER_CHANNEL", "AudioCopy", "BackgroundCopy", "CallAudio", "NoAudio",
           "audio_copy_enabled", "content_type_of", "encode_audio_copy", "open_call_audio", "store_audio_copy"]

logger = logging.getLogger(__name__)

AUDIO_COPY_CONTENT_TYPE = "audio/webm"
KBPS_PER_CHANNEL = 16
# 60 ms Opus frames: a third of the container's per-packet overhead of 20 ms frames (about 8 KB a minute less
# per channel, what keeps mono under 130 KB per minute); seeking to 60 ms is close enough for a listener.
_FRAME_MS = 60
# libopus's effort, 0-10: 5 encodes about twice as fast as 10 at nearly the same size and sound for speech, and
# the copy is made on the worker that transcribes (bench/README.md).
_COMPLEXITY = 5
# Telephone recordings hold nothing above 4 kHz: their copy is coded at 8 kHz (Opus's narrowband), which libopus
# encodes in about 60 % of the time of 16 kHz at the same bit rate and size; anything sampled higher keeps 16 kHz.
_NARROWBAND_HZ = 8000

_CONTENT_TYPES = {
    ".webm": "audio/webm", ".weba": "audio/webm", ".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg",
    ".oga": "audio/ogg", ".opus": "audio/ogg", ".flac": "audio/flac", ".m4a": "audio/mp4", ".mp4": "audio/mp4",
    ".aac": "audio/aac", ".amr": "audio/amr",
}


@dataclass(frozen=True)
class AudioCopy:
    """A copy made: its size, channels and length; `complete` is False when the recording stopped decoding part
    of the way (the copy then holds what came before), `gaps_s` how much of it is silence for damaged stretches."""

    size_bytes: int
    channels: int
    duration_s: float
    complete: bool = True
    gaps_s: float = 0.0


def audio_copy_enabled(settings: Settings) -> bool:
    """Whether the nightly run keeps audio copies: `run.audio_copy`, or when unset, not while stored transcripts
    are redacted (the recording says everything the redacted words hide)."""
    if settings.run.audio_copy is not None:
        return bool(settings.run.audio_copy)
    return not settings.bitrix24.redact_stored_transcripts


def encode_audio_copy(recording: str | Path, target: str | Path, *,
                      kbps_per_channel: int = KBPS_PER_CHANNEL) -> AudioCopy:
    """Encode `recording` (any format the analysis reads) as Opus in WebM at `target`.

    Streams: frames are decoded, resampled (to 8 kHz for a telephone recording, sampled at 8 kHz or less; else
    to 16 kHz, what the analysis hears) and encoded one by one, so a four-hour call takes no more memory than a
    minute. Two channels stay two, more are mixed to one. Damaged stretches become silence of their length; a
    recording that stops decoding part of the way is copied up to there (`complete` False) and the reason logged.

    Args:
        recording: the recording.
        target: the file to write (replaced); the muxer needs a seekable file to put the cues in front.
        kbps_per_channel: Opus bit rate per channel, kbit/s (default 16).

    Returns:
        What was written.

    Raises:
        AudioError: the recording is not readable audio, or nothing of it decodes.

    Example:
        >>> encode_audio_copy("call.mp3", "call.webm").size_bytes  # doctest: +SKIP
        143210
    """
    info = probe(recording)
    rate = _NARROWBAND_HZ if info.sample_rate_hz <= _NARROWBAND_HZ else SAMPLE_RATE_HZ
    channels = 2 if info.channels == 2 else 1  # as iter_frames gives them
    layout = "stereo" if channels == 2 else "mono"
    samples = 0
    gaps_s = 0.0
    complete = True
    # cues_to_front: the seek index before the audio, so a player reading by ranges needs no trip to the end.
    with av.open(str(target), "w", format="webm", options={"cues_to_front": "1"}) as container:
        stream = container.add_stream("libopus", rate=rate, layout=layout)
        stream.bit_rate = kbps_per_channel * 1000 * channels
        stream.codec_context.options = {"application": "voip", "frame_duration": str(_FRAME_MS),
                                        "compression_level": str(_COMPLEXITY)}
        try:
            for array, gap in iter_frames(info, rate):  # array: (channels, n) float32
                frame = av.AudioFrame.from_ndarray(array, format="fltp", layout=layout)
                frame.sample_rate = rate
                container.mux(stream.encode(frame))
                samples += array.shape[1]
                gaps_s += gap.duration_s if gap is not None else 0.0
        except AudioError as error:
            if samples == 0:
                raise
            complete = False
            logger.warning("%s: the audio copy ends at %.1f s: %s", info.path, samples / rate,
                           error.reason)
        container.mux(stream.encode(None))
    return AudioCopy(size_bytes=Path(target).stat().st_size, channels=channels,
                     duration_s=round(samples / rate, 3), complete=complete, gaps_s=round(gaps_s, 3))


def store_audio_copy(recording: str | Path, store: ArtifactStore, call_id: str, *,
                     kbps_per_channel: int = KBPS_PER_CHANNEL) -> AudioCopy:
    """Encode the recording's copy and write it to `calls/<call_id>/audio.webm` in the store (replacing one there).

    Raises:
        AudioError: nothing of the recording decodes.
        StoreError: the store refused the copy.
    """
    with tempfile.TemporaryDirectory(prefix="callqa-copy-") as folder:
        target = Path(folder) / "audio.webm"
        copy = encode_audio_copy(recording, target, kbps_per_channel=kbps_per_channel)
        store.write(audio_copy_key(call_id), target.read_bytes())
    return copy


class BackgroundCopy:
    """The copy encoded in a thread while the caller does something else with the recording (transcribes it), then
    stored, or dropped when that failed. libopus and ffmpeg run without the GIL, so the two overlap: on the GPU
    worker the copy costs the call no time unless it takes longer than the transcription.

    A context manager: leaving it waits for the thread and removes the encoded file.

    Example:
        >>> with BackgroundCopy(path) as copy:  # doctest: +SKIP
        ...     transcript = analyzer.transcribe(path)
        ...     copy.store(store, call_id)
    """

    def __init__(self, recording: str | Path, *, kbps_per_channel: int = KBPS_PER_CHANNEL,
                 scratch: Path | None = None) -> None:
        self.recording = Path(recording)
        self.kbps_per_channel = kbps_per_channel
        self.scratch = scratch  # where the encoded file waits (the temporary folder if None)
        self._folder: str | None = None
        self._made: AudioCopy | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._encode, name="callqa-audio-copy", daemon=True)

    def __enter__(self) -> BackgroundCopy:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._thread.join()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    def _encode(self) -> None:
        try:  # everything that can fail happens here, and comes out of `store`
            self._folder = tempfile.mkdtemp(prefix="callqa-copy-", dir=self.scratch)
            self._made = encode_audio_copy(self.recording, Path(self._folder) / "audio.webm",
                                           kbps_per_channel=self.kbps_per_channel)
        except BaseException as error:  # handed to the thread that asks for the copy
            self._error = error

    def store(self, store: ArtifactStore, call_id: str) -> AudioCopy:
        """Wait for the copy and write it to `calls/<call_id>/audio.webm`.

        Raises:
            AudioError: nothing of the recording decodes.
            StoreError: the store refused the copy.
        """
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._made is not None and self._folder is not None  # set together when no error was
        store.write(audio_copy_key(call_id), (Path(self._folder) / "audio.webm").read_bytes())
        return self._made


def content_type_of(name: str) -> str:
    """The media type of an audio file, by its extension (application/octet-stream when unknown)."""
    return _CONTENT_TYPES.get(PurePosixPath(name).suffix.lower(), "application/octet-stream")


@dataclass(frozen=True)
class CallAudio:
    """A call's audio, read in ranges: `size` bytes of `content_type`; `origin` says, for people, where it is
    read from (a store key, a path or an s3:// URI, never credentials)."""

    size: int
    content_type: str
    origin: str
    _reader: Callable[[int, int], bytes] = field(repr=False, compare=False)

    def read(self, start: int, length: int) -> bytes:
        """Bytes [start, start + length), fewer where the audio ends first (none from its end on).

        Raises:
            CallqaError: the audio cannot be read any more (StoreError for the store's copy).
            ValueError: `start` or `length` is negative.
        """
        if start < 0 or length < 0:
            raise ValueError(f"a range needs start >= 0 and length >= 0, not {start} and {length}")
        if length == 0 or start >= self.size:
            return b""
        return self._reader(start, min(length, self.size - start))


@dataclass(frozen=True)
class NoAudio:
    """The call's audio cannot be played; `reason` says why, in a sentence for the person who asked."""

    reason: str


def open_call_audio(store: ArtifactStore, call_id: str, *, source_uri: str | None,
                    s3: S3Settings) -> CallAudio | NoAudio:
    """The call's audio: its copy in the store when there is one, else its recording at the source when that
    can be read in ranges (a local file, an s3:// object), else `NoAudio` with the reason.

    Args:
        store: the artifact store holding the call.
        call_id: the call's id.
        source_uri: where the recording came from (the result's `source.uri`); None when unknown.
        s3: how to reach an s3:// source.

    Raises:
        StoreError: the store cannot be read (a missing copy is not an error: the source is tried).

    Example:
        >>> audio = open_call_audio(store, "4711", source_uri=result.source.uri, s3=settings.s3)  # doctest: +SKIP
        >>> audio.read(0, 65536) if isinstance(audio, CallAudio) else audio.reason  # doctest: +SKIP
    """
    key = audio_copy_key(call_id)
    size = store.size(key)
    if size is not None:
        return CallAudio(size=size, content_type=AUDIO_COPY_CONTENT_TYPE, origin=f"{store.describe()}/{key}",
                         _reader=lambda start, length: store.read_range(key, start, length))
    missing = f"no audio copy of call {call_id} is stored"
    if not source_uri:
        return NoAudio(f"{missing}, and where its recording came from is not known")
    if source_uri.startswith("s3://"):
        return _s3_audio(source_uri, s3, missing)
    if "://" in source_uri:
        return NoAudio(f"{missing}, and its source {source_uri} cannot be streamed")
    return _file_audio(Path(source_uri), missing)


def _file_audio(path: Path, missing: str) -> CallAudio | NoAudio:
    try:
        if not path.is_file():
            return NoAudio(f"{missing}, and its recording {path} is no longer there")
        size = path.stat().st_size
    except OSError as error:
        return NoAudio(f"{missing}, and its recording {path} cannot be read: {error.strerror or error}")

    def read(start: int, length: int) -> bytes:
        try:
            with path.open("rb") as handle:
                handle.seek(start)
                return handle.read(length)
        except OSError as error:
            raise CallqaError(f"{path}: cannot read: {error.strerror or error}") from error

    return CallAudio(size=size, content_type=content_type_of(path.name), origin=str(path), _reader=read)


def _s3_audio(uri: str, settings: S3Settings, missing: str) -> CallAudio | NoAudio:
    from botocore.exceptions import BotoCoreError, ClientError

    location = S3Location.parse(uri)
    client = make_client(settings)
    try:
        size = int(client.head_object(Bucket=location.bucket, Key=location.prefix)["ContentLength"])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return NoAudio(f"{missing}, and its recording {uri} is no longer there")
        return NoAudio(f"{missing}, and its recording {uri} cannot be read: {_s3_reason(error)}")
    except BotoCoreError as error:
        return NoAudio(f"{missing}, and its recording {uri} cannot be read: {error}")

    def read(start: int, length: int) -> bytes:
        try:
            response = client.get_object(Bucket=location.bucket, Key=location.prefix,
                                         Range=f"bytes={start}-{start + length - 1}")
            return response["Body"].read()
        except ClientError as error:
            raise StoreError(f"{uri}: cannot read: {_s3_reason(error)}") from error
        except BotoCoreError as error:
            raise StoreError(f"{uri}: cannot read: {error}") from error

    return CallAudio(size=size, content_type=content_type_of(location.prefix), origin=uri, _reader=read)


def _s3_reason(error) -> str:
    details = error.response.get("Error", {})
    return f"{details.get('Code', 'error')}: {details.get('Message', '')}".rstrip(": ")
