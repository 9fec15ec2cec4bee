"""The soak's small version (bench/soak.py runs the big one): a night of faults loses no call, posts no comment
twice and transcribes no call twice, on a real Dask cluster, a real S3 server and the sandbox portal."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SAMPLE_CALLS
from tests.soak import SoakPlan, soak

SHORTEST = tuple(call.call_id for call in sorted(SAMPLE_CALLS, key=lambda call: call.duration_s)[:3])


def test_a_night_of_faults_loses_nothing_and_does_nothing_twice(tmp_path: Path) -> None:
    plan = SoakPlan(calls=6, base_calls=SHORTEST, kill_every=2, s3_error_rate=0.15, s3_hang_rate=0.02,
                    unanswered_writes=1, token_ttl_requests=10, block_s=3.0, stereo_strategy="mix")
    report = soak(plan, tmp_path, progress=lambda line: None)
    summary = "\n".join(report.lines())
    # The faults happened ...
    assert report.kills >= 1, summary
    assert report.faults["s3_503"] > 0 and report.faults["portal_injected_503"] > 0, summary
    assert report.faults.get("portal_unanswered") == 1 and report.faults.get("portal_operation_time_limit"), summary
    # ... and nothing was lost, posted twice or transcribed twice.
    assert report.lost == [], summary
    assert report.duplicate_comments == 0 and report.uncommented == [], summary
    assert report.transcribed_twice == [], summary
    assert all(status in ("skipped", "rescored") for status in report.runs[-1].statuses.values()), summary
