"""Seconds per stage of a call (pipeline/support/stages.py), counted with an injected clock."""

from __future__ import annotations

from pipeline.support.stages import StageTimes


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_stages_add_up_per_name_and_a_failing_stage_still_counts() -> None:
    clock = Clock()
    times = StageTimes(clock=clock)
    with times.stage("asr"):
        clock.now += 2.5
    with times.stage("asr"):
        clock.now += 0.5
    try:
        with times.stage("speakers"):
            clock.now += 1.0
            raise RuntimeError("the diarizer broke")
    except RuntimeError:
        pass
    times.add("vad", -0.1)  # a clock that stepped back never gives negative seconds
    assert times.as_dict() == {"asr": 3.0, "speakers": 1.0, "vad": 0.0}


def test_a_generator_s_work_between_items_is_its_stage_and_the_consumer_s_is_not() -> None:
    clock = Clock()
    times = StageTimes(clock=clock)

    def blocks():
        for _ in range(3):
            clock.now += 0.25  # decoding a block
            yield "block"
        clock.now += 0.125  # the end of the file

    for _ in times.timed("decode", blocks()):
        clock.now += 10.0  # transcribing it: not decoding
    assert times.as_dict() == {"decode": 0.875}


def test_a_later_step_carries_on_from_an_earlier_step_s_times() -> None:
    clock = Clock()
    earlier = {"fetch": 1.5}
    times = StageTimes.carried(earlier, clock=clock)
    with times.stage("fetch"):
        clock.now += 0.5
    times.add("derive", 0.2)
    assert times.as_dict() == {"fetch": 2.0, "derive": 0.2} and earlier == {"fetch": 1.5}


def test_a_run_summary_stored_before_stage_times_still_reads() -> None:
    from pipeline.batch.job import CallOutcome

    old = CallOutcome.model_validate_json('{"call_id": "c1", "status": "processed", "audio_s": 55.0}')
    assert old.stage_s == {} and old.transcribing is None
