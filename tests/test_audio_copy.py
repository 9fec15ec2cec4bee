"""The compressed copy of a call's recording, and playing a call's audio in ranges from the copy or the source."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from types import SimpleNamespace

import av
import pytest

from pipeline.audio_copy import (
    BackgroundCopy,
    CallAudio,
    NoAudio,
    audio_copy_enabled,
    content_type_of,
    encode_audio_copy,
    open_call_audio,
    store_audio_copy,
)
from pipeline.batch.worker import _store_audio_copy
from pipeline.settings import Settings
from pipeline.stores import FolderStore, audio_copy_key
from pipeline.support.s3 import S3Settings
from tests.audio_write import as_pcm_wav
from tests.conftest import SAMPLE_CALLS

LONGEST = max(SAMPLE_CALLS, key=lambda call: call.duration_s)
MAX_KB_PER_CHANNEL_MINUTE = 130.0
SECRET = "callqa-test-secret-5d1e07aa"



def _decoded(path: Path) -> tuple[int, float]:
    """(channels, seconds) of what PyAV decodes from a file."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return stream.channels, samples / stream.rate


@pytest.fixture(scope="module")
def wav_originals(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("wav")
    return {kind: as_pcm_wav(getattr(LONGEST, kind), folder / f"{LONGEST.call_id}.{kind}.wav")
            for kind in ("stereo", "mono")}


@pytest.mark.parametrize("kind", ["stereo", "mono"])
def test_the_copy_plays_back_whole_at_under_130_kb_per_channel_minute(kind: str, wav_originals, tmp_path) -> None:
    original = wav_originals[kind]
    channels, duration_s = _decoded(original)
    copy = encode_audio_copy(original, tmp_path / "audio.webm")
    assert (copy.channels, copy.complete, copy.gaps_s) == (channels, True, 0.0)
    decoded_channels, decoded_s = _decoded(tmp_path / "audio.webm")
    assert decoded_channels == channels
    assert abs(decoded_s - duration_s) < 0.1 and abs(copy.duration_s - duration_s) < 0.1
    with av.open(str(tmp_path / "audio.webm")) as container:
        assert (container.format.name, container.streams.audio[0].codec_context.name) == ("matroska,webm", "opus")
    kb_per_channel_minute = copy.size_bytes / 1000 / channels / (duration_s / 60)
    print(f"{original.name}: {duration_s:.1f} s, {channels} channel(s): copy {copy.size_bytes} B = "
          f"{kb_per_channel_minute:.1f} KB per channel per minute (WAV {original.stat().st_size} B)")
    assert kb_per_channel_minute <= MAX_KB_PER_CHANNEL_MINUTE


class _Ranged(io.RawIOBase):
    """A file read only through `CallAudio.read`, as a browser reads by HTTP ranges; counts the bytes it fetched."""

    def __init__(self, audio: CallAudio) -> None:
        self.audio, self.position, self.fetched = audio, 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.position = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.audio.size}[whence] + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer) -> int:
        data = self.audio.read(self.position, len(buffer))
        buffer[: len(data)] = data
        self.position += len(data)
        self.fetched += len(data)
        return len(data)


def test_a_player_seeks_in_the_stored_copy_by_ranges(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "store")
    copy = store_audio_copy(LONGEST.stereo, store, "call-1")
    audio = open_call_audio(store, "call-1", source_uri=str(LONGEST.stereo), s3=S3Settings())
    assert isinstance(audio, CallAudio)
    assert (audio.size, audio.content_type) == (copy.size_bytes, "audio/webm")
    assert audio.origin.endswith(audio_copy_key("call-1"))
    data = (tmp_path / "store" / audio_copy_key("call-1")).read_bytes()
    assert audio.read(100, 50) == data[100:150] and audio.read(audio.size - 10, 100) == data[-10:]
    assert audio.read(audio.size, 10) == b""
    # The cues in front: the player finds the 60th second without reading the file up to it.
    ranged = _Ranged(audio)
    with av.open(ranged, format="webm") as container:
        stream = container.streams.audio[0]
        container.seek(int(60 / stream.time_base), stream=stream)
        frame = next(container.decode(stream))
        assert 59.0 <= float(frame.pts * stream.time_base) <= 60.0
    assert ranged.fetched < audio.size / 2, (ranged.fetched, audio.size)


def test_a_damaged_recording_is_copied_as_far_as_it_decodes(tmp_path: Path, caplog) -> None:
    data = LONGEST.stereo.read_bytes()
    damaged = bytearray(data)
    damaged[len(data) // 3 : len(data) // 3 + 5000] = bytes(5000)
    (tmp_path / "damaged.mp3").write_bytes(bytes(damaged))
    copy = encode_audio_copy(tmp_path / "damaged.mp3", tmp_path / "damaged.webm")
    # The stretch that does not decode is silence of its length: the copy keeps the call's timeline.
    assert copy.complete and copy.gaps_s > 0.5 and abs(copy.duration_s - LONGEST.duration_s) < 0.5
    assert abs(_decoded(tmp_path / "damaged.webm")[1] - copy.duration_s) < 0.1

    (tmp_path / "cut.mp3").write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="pipeline.audio_copy"):
        cut = encode_audio_copy(tmp_path / "cut.mp3", tmp_path / "cut.webm")
    assert not cut.complete and LONGEST.duration_s / 2 - 3 < cut.duration_s < LONGEST.duration_s / 2 + 3
    assert abs(_decoded(tmp_path / "cut.webm")[1] - cut.duration_s) < 0.1
    assert "the audio copy ends at" in caplog.text and "truncated" in caplog.text


def test_the_worker_s_copy_encodes_beside_the_transcription_and_a_failed_one_is_a_warning(tmp_path: Path,
                                                                                          caplog) -> None:
    store = FolderStore(tmp_path / "store")
    with BackgroundCopy(LONGEST.stereo) as copy:
        assert copy.store(store, "call-1").channels == 2
        folder = Path(copy._folder or "")
        assert (folder / "audio.webm").is_file()
    assert not folder.exists()  # the encoded file goes with the context
    assert _decoded(tmp_path / "store" / audio_copy_key("call-1"))[0] == 2

    (tmp_path / "store" / "calls" / "blocked").write_text("a file where the call's folder must go\n")
    plugin = SimpleNamespace(store=store)
    with caplog.at_level(logging.WARNING, logger="pipeline.batch.worker"):
        with BackgroundCopy(LONGEST.stereo) as copy:
            _store_audio_copy(copy, "blocked", plugin)  # type: ignore[arg-type]
        with BackgroundCopy(tmp_path / "not-there.mp3") as copy:
            _store_audio_copy(copy, "gone", plugin)  # type: ignore[arg-type]
    assert "call blocked: no audio copy stored" in caplog.text and "cannot write" in caplog.text
    assert "call gone: no audio copy stored" in caplog.text and "file not found" in caplog.text


def test_copies_are_on_unless_stored_transcripts_are_redacted() -> None:
    assert audio_copy_enabled(Settings())
    redacted = Settings(bitrix24={"redact_stored_transcripts": True})
    assert not audio_copy_enabled(redacted)
    assert audio_copy_enabled(Settings(bitrix24={"redact_stored_transcripts": True}, run={"audio_copy": True}))
    assert not audio_copy_enabled(Settings(run={"audio_copy": False}))


def test_without_a_copy_a_local_recording_is_read_where_it_is(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "store")
    audio = open_call_audio(store, "call-1", source_uri=str(LONGEST.stereo), s3=S3Settings())
    assert isinstance(audio, CallAudio)
    data = LONGEST.stereo.read_bytes()
    assert (audio.size, audio.content_type, audio.origin) == (len(data), "audio/mpeg", str(LONGEST.stereo))
    assert audio.read(1000, 4096) == data[1000:5096] and audio.read(len(data) - 5, 4096) == data[-5:]

    gone = open_call_audio(store, "call-1", source_uri=str(tmp_path / "moved.mp3"), s3=S3Settings())
    assert gone == NoAudio(f"no audio copy of call call-1 is stored, and its recording {tmp_path / 'moved.mp3'} "
                           "is no longer there")
    crm = open_call_audio(store, "4711", source_uri="bitrix24://portal.example/call/4711", s3=S3Settings())
    assert crm == NoAudio("no audio copy of call 4711 is stored, and its source bitrix24://portal.example/call/4711 "
                          "cannot be streamed")
    unknown = open_call_audio(store, "x", source_uri=None, s3=S3Settings())
    assert isinstance(unknown, NoAudio) and "not known" in unknown.reason


def test_content_types_by_extension() -> None:
    assert [content_type_of(name) for name in ("a.webm", "b.WAV", "c.mp3", "d.ogg", "e.opus", "f.m4a", "g.bin")] == [
        "audio/webm", "audio/wav", "audio/mpeg", "audio/ogg", "audio/ogg", "audio/mp4", "application/octet-stream"]



def test_without_a_copy_an_s3_recording_is_read_by_ranges(tmp_path: Path, s3_endpoint: str) -> None:
    import boto3

    settings = S3Settings(endpoint_url=s3_endpoint, access_key_id="AKIACALLQATEST00077", secret_access_key=SECRET)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="AKIACALLQATEST00077", aws_secret_access_key=SECRET)
    client.create_bucket(Bucket="recordings")
    client.upload_file(str(LONGEST.mono), "recordings", "in/call 1.mp3")
    store = FolderStore(tmp_path / "store")
    audio = open_call_audio(store, "c1", source_uri="s3://recordings/in/call 1.mp3", s3=settings)
    assert isinstance(audio, CallAudio)
    data = LONGEST.mono.read_bytes()
    assert (audio.size, audio.content_type) == (len(data), "audio/mpeg")
    assert audio.read(0, 10) == data[:10] and audio.read(20000, 3000) == data[20000:23000]
    assert audio.read(len(data) - 7, 100) == data[-7:] and audio.read(len(data) + 1, 100) == b""

    gone = open_call_audio(store, "c1", source_uri="s3://recordings/in/gone.mp3", s3=settings)
    assert isinstance(gone, NoAudio) and "s3://recordings/in/gone.mp3 is no longer there" in gone.reason
    other = open_call_audio(store, "c1", source_uri="s3://no-such-bucket/x.mp3", s3=settings)
    assert isinstance(other, NoAudio) and "s3://no-such-bucket/x.mp3" in other.reason
    assert SECRET not in repr(other) and "AKIACALLQATEST00077" not in repr(other)
