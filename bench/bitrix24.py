"""Bitrix24 throughput against the sandbox at the portal's default limits (a bucket of 50, draining 2 requests/s).

- Comments written per second: `--comments` score comments through the publisher (50 to a `batch`), and, as the
  baseline in the same run, `--baseline` comments posted one request each; the sandbox counts the requests it
  refused for the limit (the goal: none).
- Requests per call on the read path: listing a day's calls (statistics, bindings, managers) and downloading
  every recording (`disk.file.get` + the download), divided by the calls.

    .venv/bin/python bench/bitrix24.py [--comments 5000] [--baseline 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pydantic import SecretStr  # noqa: E402

from pipeline.bitrix24.client import Bitrix24Client, WebhookAuth  # noqa: E402
from pipeline.bitrix24.settings import Bitrix24Settings  # noqa: E402
from pipeline.bitrix24.source import Bitrix24Source  # noqa: E402
from pipeline.publish.bitrix24 import CommentPublisher  # noqa: E402
from pipeline.sandbox import MSK, Portal, serve  # noqa: E402
from pipeline.schema import CallResult  # noqa: E402
from pipeline.sources.base import TimeWindow  # noqa: E402
from pipeline.stores import FolderStore  # noqa: E402
from tests.conftest import CALLS  # noqa: E402


def a_scored_result() -> CallResult:
    from pipeline.analyze import CallAnalyzer
    from pipeline.derive import DeriveSetup
    from pipeline.settings import load_settings

    analyzer = CallAnalyzer(load_settings(device="cpu"), setup=DeriveSetup.load())
    return analyzer.analyze(CALLS / "windows.stereo.mp3", manager_channel="right", direction="out")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=5000)
    parser.add_argument("--baseline", type=int, default=100)
    args = parser.parse_args()
    template = a_scored_result()
    day = date(2026, 11, 28)
    extra_deals = args.comments + args.baseline

    def fresh_portal() -> Portal:  # each phase gets its own portal, so no phase pays for another's bucket
        portal = Portal.from_folder(CALLS, day=day)
        for index in range(extra_deals):
            portal.deals[str(90000 + index)] = {"ID": str(90000 + index), "TITLE": "bench"}
        return portal

    with tempfile.TemporaryDirectory(prefix="callqa-b24-") as tmp:
        portal = fresh_portal()
        with serve(portal) as sandbox:
            results = [template.model_copy(update={
                "call_id": f"bench-{index}", "metadata": template.metadata.model_copy(
                    update={"crm_target": f"deal:{90000 + index}"})}) for index in range(args.comments)]
            client = Bitrix24Client(WebhookAuth(SecretStr(sandbox.webhook_url)))
            publisher = CommentPublisher(client, FolderStore(Path(tmp) / "ledger"))
            started = time.perf_counter()
            outcomes = publisher.publish(results)
            batch_s = time.perf_counter() - started
            posted = sum(o.status == "posted" for o in outcomes)
            batch_requests, rejected = client.requests, portal.rejected["limit"]

        portal = fresh_portal()
        with serve(portal) as sandbox:
            single = Bitrix24Client(WebhookAuth(SecretStr(sandbox.webhook_url)))
            started = time.perf_counter()
            for index in range(args.baseline):
                single.result("crm.timeline.comment.add", {"fields": {
                    "ENTITY_ID": str(90000 + args.comments + index), "ENTITY_TYPE": "deal", "COMMENT": "тест"}},
                    write=True)
            single_s = time.perf_counter() - started
            single_rejected = portal.rejected["limit"]

        portal = fresh_portal()
        with serve(portal) as sandbox:
            reader = Bitrix24Source(Bitrix24Settings(webhook=SecretStr(sandbox.webhook_url)))
            start = datetime.combine(day, datetime.min.time(), tzinfo=MSK)
            records = reader.list_calls(TimeWindow(since=start, until=start + timedelta(days=1)))
            listing_requests = reader.client.requests
            for record in records:
                reader.fetch(record, Path(tmp))
            read_requests = reader.client.requests
            read_rejected = portal.rejected["limit"]
    print("Bitrix24 sandbox at the default limits (bucket 50, 2 requests/s)")
    print(f"  comments in batches of 50: {posted} in {batch_s:.1f} s = {posted / batch_s:.0f} comments/s, "
          f"{batch_requests} requests, {rejected} refused for the limit")
    print(f"  one request per comment:   {args.baseline} in {single_s:.1f} s = {args.baseline / single_s:.1f} "
          f"comments/s, {single_rejected} refused for the limit")
    print(f"  ratio batch / single: {(posted / batch_s) / (args.baseline / single_s):.0f}")
    print(f"  read path for {len(records)} calls: {listing_requests} requests to list them, {read_requests} with "
          f"the recordings = {read_requests / len(records):.2f} requests per call, {read_rejected} refused")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
