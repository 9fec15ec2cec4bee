"""Bitrix24 throughput against the sandbox at the portal's default limits (a bucket of 50, draining 2 requests/s).

- Comments written per second: `--comments` score comments through the publisher (50 to a `batch`), and, as the
  baseline in the same run, `--baseline` comments posted one request each; the sandbox counts the requests it
  refused for the limit (the goal: none).
- Requests per call on the read path: listing a day's calls (statistics, bindings, managers), reading their CRM
  data for the report (deals, stage histories, funnels: pipeline/bitrix24/crm.py) and downloading every recording
  (`disk.file.get` + the download), divided by the calls.
- Requests per 50 deals when a period holds many (`--deals`): the CRM reader's batched rounds, against reading
  the same kind of portal (`--baseline-deals`) one page per request, as a client without `batch` would.

    .venv/bin/python bench/bitrix24.py [--comments 5000] [--baseline 100] [--deals 10000] [--baseline-deals 1000]
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

from pipeline.bitrix24.client import PAGE, Bitrix24Client, WebhookAuth  # noqa: E402
from pipeline.bitrix24.crm import DEAL_FIELDS, HISTORY_FIELDS, read_crm  # noqa: E402
from pipeline.bitrix24.settings import Bitrix24Settings  # noqa: E402
from pipeline.bitrix24.source import Bitrix24Source  # noqa: E402
from pipeline.publish.bitrix24 import CommentPublisher  # noqa: E402
from pipeline.sandbox import MSK, Portal, serve  # noqa: E402
from pipeline.schema import CallResult  # noqa: E402
from pipeline.sources.base import CallRecord, TimeWindow  # noqa: E402
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
    parser.add_argument("--deals", type=int, default=10_000)
    parser.add_argument("--baseline-deals", type=int, default=1000)
    args = parser.parse_args()
    template = a_scored_result()
    day = date(2026, 11, 28)
    extra_deals = args.comments + args.baseline

    def fresh_portal() -> Portal:  # each phase gets its own portal, so no phase pays for another's bucket
        portal = Portal.from_folder(CALLS, day=day)
        portal.seed_deals(extra_deals, day=day, first_id=90000)
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

        portal = Portal.from_folder(CALLS, day=day)  # the demo's portal: its calls' deals and a few more
        with serve(portal) as sandbox:
            reader = Bitrix24Source(Bitrix24Settings(webhook=SecretStr(sandbox.webhook_url)))
            start = datetime.combine(day, datetime.min.time(), tzinfo=MSK)
            window = TimeWindow(since=start, until=start + timedelta(days=1))
            records = reader.list_calls(window)
            listing_requests = reader.client.requests
            snapshot = read_crm(reader.client, records, window, run_id="bench", portal=reader.portal)
            crm_requests = reader.client.requests - listing_requests
            for record in records:
                reader.fetch(record, Path(tmp))
            read_requests = reader.client.requests
            read_rejected = portal.rejected["limit"]
        many = [crm_for_many(args.deals, batched=True, day=day),
                crm_for_many(args.baseline_deals, batched=False, day=day)]
    print("Bitrix24 sandbox at the default limits (bucket 50, 2 requests/s)")
    print(f"  comments in batches of 50: {posted} in {batch_s:.1f} s = {posted / batch_s:.0f} comments/s, "
          f"{batch_requests} requests, {rejected} refused for the limit")
    print(f"  one request per comment:   {args.baseline} in {single_s:.1f} s = {args.baseline / single_s:.1f} "
          f"comments/s, {single_rejected} refused for the limit")
    print(f"  ratio batch / single: {(posted / batch_s) / (args.baseline / single_s):.0f}")
    print(f"  read path for {len(records)} calls: {listing_requests} requests to list them, {crm_requests} for "
          f"their CRM data ({len(snapshot.deals)} deals, {len(snapshot.funnels)} funnels), {read_requests} with the "
          f"recordings = {read_requests / len(records):.2f} requests per call, {read_rejected} refused")
    for label, (deals, requests, wall_s) in zip(("batched rounds (callqa)", "one page per request"), many):
        print(f"  CRM of a period with {deals} deals, {label}: {requests} requests = {50 * requests / deals:.3f} "
              f"per 50 deals, {wall_s:.0f} s")
    ratio = (50 * many[1][1] / many[1][0]) / (50 * many[0][1] / many[0][0])
    print(f"  ratio requests per 50 deals, one page per request / batched: {ratio:.0f}")
    return 0


def crm_for_many(count: int, *, batched: bool, day: date) -> tuple[int, int, float]:
    """(deals read, requests, seconds) for a portal whose three managers opened `count` deals on `day`."""
    portal = Portal()
    portal.seed_deals(count, day=day)
    start = datetime.combine(day, datetime.min.time(), tzinfo=MSK)
    window = TimeWindow(since=start, until=start + timedelta(days=1))
    managers = ["12", "15", "17"]
    with serve(portal) as sandbox:
        client = Bitrix24Client(WebhookAuth(SecretStr(sandbox.webhook_url)), timeout_s=300)
        started = time.perf_counter()
        if batched:
            records = [CallRecord(call_id=f"c{m}", uri=f"c{m}.mp3", manager=m) for m in managers]
            read = len(read_crm(client, records, window, run_id="bench", portal="bench").deals)
        else:
            ids: list[int] = []
            start_at = 0
            while True:
                page = client.call("crm.item.list", {"entityTypeId": 2, "select": DEAL_FIELDS, "order": {"id": "ASC"},
                                                     "filter": {"@assignedById": managers, ">=createdTime":
                                                                window.since.isoformat()}, "start": start_at})
                ids += [item["id"] for item in page["result"]["items"]]
                if "next" not in page:
                    break
                start_at = int(page["next"])
            for first in range(0, len(ids), PAGE):
                start_at = 0
                while True:
                    page = client.call("crm.stagehistory.list", {
                        "entityTypeId": 2, "filter": {"@OWNER_ID": ids[first: first + PAGE]}, "order": {"ID": "ASC"},
                        "select": HISTORY_FIELDS, "start": start_at})
                    if "next" not in page:
                        break
                    start_at = int(page["next"])
            read = len(ids)
        return read, client.requests, time.perf_counter() - started


if __name__ == "__main__":
    raise SystemExit(main())
