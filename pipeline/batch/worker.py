"""What runs on the Dask workers: three steps per call, and a plugin that keeps each worker's state.

    prepare_call     (CPU)  look in the store: done already? only re-score? else claim the call (claims.py: no
                            other run transcribes it meanwhile) and fetch the recording
    transcribe_call  (GPU)  decode, transcribe, attribute speakers, metrics: the expensive step; beside it, in
                            a thread, the recording's compressed copy, stored from here (audio_copy.py) where
                            the file is, so that its bytes never travel between tasks
    finish_call      (CPU)  derive the result from the transcript and the call's reviews (derive.py,
                            reviews.py), then write transcript, result and audio facts to the store, and
                            release the claim

Expected failures come back as values (a failed `CallOutcome`), never as exceptions, so one bad call cannot
stop the others and nothing is retried blindly. The ASR model loads once per worker process and stays loaded
(`load_asr` is cached per process); each run's plugin carries its job and scoring setup.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import shutil
import socket
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from distributed import WorkerPlugin, get_worker

from pipeline.batch.claims import ClaimRefused, Claims
from pipeline.batch.job import AudioFacts, BatchJob, CallOutcome, FetchedRecording, Prepared, Transcribed
from pipeline.batch.scratch import make_recordings_folder
from pipeline.derive import DeriveSetup
from pipeline.errors import CallqaError
from pipeline.reviews import store_result
from pipeline.schema import CallMetadata, CallResult
from pipeline.sources import open_source
from pipeline.stores import audio_key, open_store, result_key, transcript_key
from pipeline.support.fileio import sha256_of_file
from pipeline.support.stages import StageTimes
from pipeline.transcript import Transcript, read_transcript

if TYPE_CHECKING:
    from pipeline.audio_copy import BackgroundCopy

__all__ = ["CallqaWorkerPlugin", "ClosingHeartbeatFilter", "finish_call", "prepare_call", "transcribe_call"]

logger = logging.getLogger(__name__)

# One lock for the plugin's lazily built state: a worker's task threads (several transcriptions at once on a GPU
# worker) may ask for it together, and since Python 3.12 `functools.cached_property` no longer locks, so each
# would load its own ASR model. Reentrant: building one part may need another (the claims need the store).
_BUILDING = threading.RLock()


class _built_once(functools.cached_property):
    """A cached property that is built once per object whatever the threads asking for it."""

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        with _BUILDING:
            return super().__get__(instance, owner)


class ClosingHeartbeatFilter(logging.Filter):
    """Drops the error a worker logs when its heartbeat meets its own connections closing: the worker is shutting
    down with the run's cluster, a race inside Dask whose traceback tells an operator nothing. Any other failed
    heartbeat (the scheduler gone or unreachable while the worker runs) is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith("Failed to communicate with scheduler during heartbeat"):
            return True
        error = record.exc_info[1] if record.exc_info else None
        return not (error is not None and "ConnectionPool closing" in str(error))


class CallqaWorkerPlugin(WorkerPlugin):
    """Per-worker state of one run: the job, the derive setup, the source and store clients, the analyzer."""

    def __init__(self, job: BatchJob, setup: DeriveSetup | None, *, cpu_threads: int = 0,
                 concurrent_calls: int = 1, rate_share: float = 1.0) -> None:
        self.job = job
        self.derive_setup = setup or DeriveSetup(**DeriveSetup.options_of(job.settings))
        self.cpu_threads = cpu_threads
        self.concurrent_calls = concurrent_calls
        self.rate_share = rate_share  # of the CRM's request rate, shared by the workers

    def setup(self, worker) -> None:
        self.worker_name = str(worker.name)
        heartbeat = logging.getLogger("distributed.worker")
        if not any(isinstance(each, ClosingHeartbeatFilter) for each in heartbeat.filters):  # once per process
            heartbeat.addFilter(ClosingHeartbeatFilter())

    def teardown(self, worker) -> None:
        if "recordings" in self.__dict__:  # made on first use
            shutil.rmtree(self.recordings, ignore_errors=True)

    @_built_once
    def recordings(self) -> Path:
        """This worker's folder of fetched recordings waiting for their transcription, for this run."""
        return make_recordings_folder(self.job.run_id)

    @_built_once
    def source(self):
        return open_source(self.job.source, self.job.settings.s3, self.job.settings.bitrix24,
                           rate_share=self.rate_share)

    @_built_once
    def store(self):
        return open_store(self.job.store, self.job.settings.s3)

    @_built_once
    def claims(self) -> Claims:
        return Claims(self.store, self.job.run_id, ttl_s=self.job.settings.run.claim_ttl_s,
                      worker=getattr(self, "worker_name", None))

    @_built_once
    def analyzer(self):
        from pipeline.analyze import CallAnalyzer

        settings = self.job.settings
        if self.cpu_threads and not settings.cpu_threads:
            settings = settings.model_copy(update={"cpu_threads": self.cpu_threads})
        # Only the audio half runs here (derive runs in finish_call, on a CPU worker); several transcriptions may
        # share the model at once. The setup comes along for its lexicons' hotwords, when those are on.
        return CallAnalyzer(settings, concurrent_calls=self.concurrent_calls, setup=self.derive_setup)

    @_built_once
    def voiceprints(self):
        from pipeline.speakers.voiceprints import VoiceprintStore

        return VoiceprintStore(self.store, self.job.settings.voiceprints)

    @_built_once
    def _voiceprints_seen(self) -> dict:
        return {}

    def voiceprint(self, manager_id: str | None):
        """The manager's voiceprint as it was when this worker first needed it (None: none, or unreadable)."""
        if not manager_id:
            return None
        cache = self._voiceprints_seen
        if manager_id not in cache:
            try:
                cache[manager_id] = self.voiceprints.get(manager_id)
            except CallqaError as error:  # the call can do without it; its roles rest on what is said
                logger.warning("voiceprint of manager %s not used: %s", manager_id, error)
                cache[manager_id] = None
        return cache[manager_id]


def _plugin(name: str) -> CallqaWorkerPlugin:
    plugin = get_worker().plugins[name]
    assert isinstance(plugin, CallqaWorkerPlugin)  # registered under this name by run_batch
    return plugin


def _failed(record_id: str, reason: str, plugin: CallqaWorkerPlugin | None = None, *,
            times: StageTimes | None = None, transcribing: tuple[float, float] | None = None) -> CallOutcome:
    """A failed call's outcome; one that failed while transcribing keeps the time it held its slot."""
    return CallOutcome(call_id=record_id, status="failed", reason=reason, worker=getattr(plugin, "worker_name", None),
                       stage_s=times.as_dict() if times else {}, transcribing=transcribing)


def _audio_facts(store, call_id: str) -> AudioFacts | None:
    data = store.read(audio_key(call_id))
    try:
        return AudioFacts.model_validate_json(data) if data else None
    except ValueError:
        return None  # unreadable facts: the call is simply looked at again


def _stored_result(store, call_id: str) -> CallResult | None:
    data = store.read(result_key(call_id))
    try:
        return CallResult.from_json(data) if data else None
    except ValueError:
        return None  # an unreadable old result is simply redone


def _same_model(result: CallResult, job: BatchJob) -> bool:
    return (result.model.asr.name, result.model.asr.model_sha256) == (job.asr.name, job.asr.sha256)


def _up_to_date(result: CallResult, job: BatchJob) -> bool:
    return (_same_model(result, job) and result.lexicon_version == job.lexicon_version
            and result.scorecard_version == job.scorecard_version)


def prepare_call(record, plugin_name: str) -> Prepared:
    """Decide what a call needs; fetch its recording when it must be transcribed."""
    plugin = _plugin(plugin_name)
    job, store = plugin.job, plugin.store
    try:
        audio = None if job.force else _audio_facts(store, record.call_id)
        stored = None if job.force else _stored_result(store, record.call_id)
        unchanged = bool(audio and record.fingerprint and audio.fingerprint == record.fingerprint)
        if job.rescore_only:
            return _rescore(record, plugin, stored_audio=audio)
        if unchanged and stored and _up_to_date(stored, job):
            return Prepared(record=record, action="skip", reason="done: same audio, models and versions")
        if unchanged and stored and _same_model(stored, job):
            return _rescore(record, plugin, stored_audio=audio)
        try:
            plugin.claims.acquire(record.call_id)  # from here on, this run alone works on the call
        except ClaimRefused as refused:
            return Prepared(record=record, action="claimed", reason=str(refused))
        workdir = Path(tempfile.mkdtemp(prefix="call-", dir=plugin.recordings))
        times = StageTimes()
        try:
            with times.stage("fetch"):
                path = plugin.source.fetch(record, workdir)
                sha256 = sha256_of_file(path)
        except CallqaError:
            shutil.rmtree(workdir, ignore_errors=True)
            _release(plugin, record.call_id)
            raise
        # A download lands in `workdir`, which goes once the call is transcribed; a file the source serves in
        # place (a local folder) is the user's recording: read where it is, never moved or removed.
        downloaded = path.is_relative_to(workdir)
        if not downloaded:
            shutil.rmtree(workdir, ignore_errors=True)
        if audio and audio.sha256 == sha256 and stored and _up_to_date(stored, job):
            # The file was touched but not changed: note its new fingerprint so the next run need not fetch it.
            shutil.rmtree(workdir, ignore_errors=True)
            store.write(audio_key(record.call_id), audio.model_copy(update={"fingerprint": record.fingerprint})
                        .to_json())
            _release(plugin, record.call_id)
            return Prepared(record=record, action="skip", reason="done: same audio (sha256), models and versions")
        fetched = FetchedRecording(host=socket.gethostname(), path=str(path), size_bytes=path.stat().st_size,
                                   scratch=str(workdir) if downloaded else None)
        return Prepared(record=record, action="analyze", fetched=fetched, suffix=path.suffix, sha256=sha256,
                        stage_s=times.as_dict())
    except CallqaError as error:
        return Prepared(record=record, action="failed", reason=str(error))
    except Exception as error:  # a bug must not take the batch down; it is reported with the call
        logger.exception("preparing %s failed", record.call_id)
        return Prepared(record=record, action="failed", reason=f"internal error: {type(error).__name__}: {error}")


def _rescore(record, plugin: CallqaWorkerPlugin, *, stored_audio: AudioFacts | None) -> Prepared:
    data = plugin.store.read(transcript_key(record.call_id))
    if not data:
        return Prepared(record=record, action="skip", reason="no stored transcript to re-score")
    rescored = store_result(plugin.store, read_transcript(data), plugin.derive_setup)  # keeps people's reviews
    return Prepared(record=record, action="rescored", reason="re-scored from the stored transcript",
                    sha256=stored_audio.sha256 if stored_audio else None, duration_s=rescored.duration_s)


def _release(plugin: CallqaWorkerPlugin, call_id: str) -> None:
    try:
        plugin.claims.release(call_id)
    except CallqaError as error:  # it lapses by itself
        logger.warning("call %s: claim not released: %s", call_id, error)


def transcribe_call(prepared: Prepared, plugin_name: str) -> Transcribed | CallOutcome:
    """The expensive step: the audio half of the call, its transcript."""
    plugin = _plugin(plugin_name)
    record = prepared.record
    path: Path | None = None
    times = StageTimes.carried(prepared.stage_s)
    begun = time.time()
    with contextlib.ExitStack() as cleanup:
        try:
            with times.stage("fetch"):
                path = _recording(prepared, plugin, cleanup)
            copy = _audio_copy(path, plugin, cleanup)
            transcript = plugin.analyzer.transcribe(
                path, call_id=record.call_id, direction=record.direction, manager_channel=record.manager_channel,
                voiceprint=plugin.voiceprint(record.manager),
                collect_manager_voice=bool(record.manager) and plugin.job.settings.voiceprints.enroll_from_stereo,
                times=times)
            if copy is not None:
                with times.stage("audio_copy"):  # waits for the encoding thread, if it is still going
                    _store_audio_copy(copy, record.call_id, plugin)
        except CallqaError as error:
            _release(plugin, record.call_id)
            # The local copy is not where the call lives: name the source's URI instead.
            reason = str(error) if path is None else str(error).replace(str(path), record.uri)
            return _failed(record.call_id, reason, plugin, times=times, transcribing=(begun, time.time()))
        except Exception as error:
            logger.exception("transcribing %s failed", record.call_id)
            _release(plugin, record.call_id)
            return _failed(record.call_id, f"internal error: {type(error).__name__}: {error}", plugin,
                           times=times, transcribing=(begun, time.time()))
    metadata = CallMetadata(started_at=record.started_at.isoformat() if record.started_at else None,
                            manager_id=record.manager, manager_name=record.manager_name, deal_id=record.deal_id,
                            crm_target=record.crm_target)
    transcript = transcript.model_copy(update={
        "source": transcript.source.model_copy(update={"uri": record.uri}), "metadata": metadata})
    return Transcribed(record=record, sha256=prepared.sha256,
                       size_bytes=prepared.fetched.size_bytes if prepared.fetched else 0, transcript=transcript,
                       stage_s=times.as_dict(), transcribing=(begun, time.time()))


def _audio_copy(path: Path, plugin: CallqaWorkerPlugin, cleanup: contextlib.ExitStack) -> BackgroundCopy | None:
    """The recording's copy for playback, encoding in a thread while the call is transcribed (None when the
    settings want none); leaving `cleanup` waits for it, before the recording goes."""
    from pipeline.audio_copy import BackgroundCopy, audio_copy_enabled

    if not audio_copy_enabled(plugin.job.settings):
        return None
    try:
        # in the worker's recordings folder, so that a killed worker's half-made copy is swept with it
        return cleanup.enter_context(BackgroundCopy(path, scratch=plugin.recordings))
    except Exception as error:  # no thread to be had: the call goes on without its copy
        logger.warning("%s: no audio copy: %s: %s", path, type(error).__name__, error)
        return None


def _store_audio_copy(copy: BackgroundCopy, call_id: str, plugin: CallqaWorkerPlugin) -> None:
    """Store the transcribed call's copy; a copy that fails is a warning, the call goes on without it."""
    try:
        copy.store(plugin.store, call_id)
    except CallqaError as error:
        logger.warning("call %s: no audio copy stored: %s", call_id, error)
    except Exception as error:  # a bug in the copy must not cost the call its transcript
        logger.warning("call %s: no audio copy stored: %s: %s", call_id, type(error).__name__, error, exc_info=True)


def _recording(prepared: Prepared, plugin: CallqaWorkerPlugin, cleanup: contextlib.ExitStack) -> Path:
    """The call's recording as a local file: the one the first step left, when this machine has it (a download
    is removed once transcribed), else fetched again into a folder of its own."""
    fetched = prepared.fetched
    if fetched is not None and fetched.host == socket.gethostname():
        path = Path(fetched.path)
        if fetched.scratch is not None:
            cleanup.callback(shutil.rmtree, fetched.scratch, ignore_errors=True)
        if path.is_file() and path.stat().st_size == fetched.size_bytes:
            return path
    workdir = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="callqa-fetch-", dir=plugin.recordings))
    return plugin.source.fetch(prepared.record, Path(workdir))


def _enroll_manager_voice(record, transcript: Transcript, result: CallResult, plugin: CallqaWorkerPlugin) -> None:
    """A good stereo call of a known manager adds a sample to the manager's voiceprint (once per call)."""
    from pipeline.speakers.voiceprints import VoiceSample

    options = plugin.job.settings.voiceprints
    if (transcript.manager_voice is None or not record.manager or result.layout != "stereo"
            or not result.quality.passed or transcript.manager_speech_s < options.min_speech_s):
        return
    sample = VoiceSample(manager_id=record.manager, manager_name=record.manager_name,
                         embedding=transcript.manager_voice, speech_s=transcript.manager_speech_s, kind="stereo",
                         source=record.call_id)
    try:
        plugin.voiceprints.add(sample)
    except CallqaError as error:  # the call itself is fine; its voice is simply not learned this time
        logger.warning("voice sample of %s from %s not stored: %s", record.manager, record.call_id, error)


def _redacted(transcript: Transcript) -> Transcript:
    """The transcript with personal data hidden in its words, before anything is stored or derived."""
    from pipeline.publish.pii import redact_words

    return transcript.model_copy(update={"words": redact_words(transcript.words)})


def finish_call(transcribed: Transcribed | CallOutcome, plugin_name: str) -> CallOutcome:
    """Derive and store one transcribed call; `audio.json` is written last and marks the call complete."""
    plugin = _plugin(plugin_name)
    if isinstance(transcribed, CallOutcome):
        return transcribed
    record, transcript, job, store = transcribed.record, transcribed.transcript, plugin.job, plugin.store
    try:
        previous = _audio_facts(store, record.call_id)
        if previous and previous.run_id == job.run_id and previous.sha256 == transcribed.sha256:
            # This run finished the call already and the task ran again (a worker died after writing):
            # the call is done once, not twice.
            _release(plugin, record.call_id)
            return CallOutcome(call_id=record.call_id, status="processed", reason="already stored by this run",
                               audio_s=transcript.duration_s, worker=plugin.worker_name)
        times = StageTimes.carried(transcribed.stage_s)
        if job.settings.bitrix24.redact_stored_transcripts:
            transcript = _redacted(transcript)
        with times.stage("store"):
            store.write(transcript_key(record.call_id), transcript.to_json().encode())
        with times.stage("derive"):  # with the reviews of a call analysed again; the result is stored here too
            result = store_result(store, transcript, plugin.derive_setup)
        _enroll_manager_voice(record, transcript, result, plugin)
        facts = AudioFacts(call_id=record.call_id, uri=record.uri, fingerprint=record.fingerprint,
                           sha256=transcribed.sha256, size_bytes=transcribed.size_bytes,
                           duration_s=transcript.duration_s, run_id=job.run_id,
                           stored_at=datetime.now(UTC).isoformat(timespec="seconds"), record=record)
        with times.stage("store"):
            store.write(audio_key(record.call_id), facts.to_json())
        _release(plugin, record.call_id)
        return CallOutcome(call_id=record.call_id, status="processed", audio_s=result.duration_s,
                           score=result.score.total if result.score else None, worker=plugin.worker_name,
                           stage_s=times.as_dict(), transcribing=transcribed.transcribing)
    except CallqaError as error:
        _release(plugin, record.call_id)
        return _failed(record.call_id, str(error), plugin)
    except Exception as error:
        logger.exception("storing %s failed", record.call_id)
        _release(plugin, record.call_id)
        return _failed(record.call_id, f"internal error: {type(error).__name__}: {error}", plugin)
