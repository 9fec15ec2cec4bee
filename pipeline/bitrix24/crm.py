"""Reading the CRM for the report: the deals (and leads) of a run's calls, the managers' deals of the period, their
stage histories, and the funnels with their stages, into one typed `CrmSnapshot` (pipeline/report/model.py).

    snapshot = read_crm(client, records, window, run_id="...", portal=client.auth.portal)

Requests (reference section 10): everything goes out in `batch`es of up to 50 commands, in rounds — the first
round asks for the funnels, the stages, the calls' deals and leads by id and the first page of the managers'
deals of the period; each answer that says there is more (a `total` beyond its page) adds its further pages,
and each deal found adds the first page of its stage history, to the next round. A night of 50 calls costs
about three requests; 10 000 deals of the period about 25 (`bench/bitrix24.py`). Rows become small typed records
as each page arrives, so memory grows with the deals, not with the JSON the portal sent.

`crm.item.list` and `crm.stagehistory.list` are what the docs recommend (`crm.deal.list` is deprecated); pages go
by offset in ascending id order, so each page can be asked for in the same round.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.bitrix24.client import PAGE, Bitrix24Client
from pipeline.report.model import CrmSnapshot, Deal, Funnel, Stage, StageMove
from pipeline.sources.base import CallRecord, TimeWindow

__all__ = ["read_crm"]

logger = logging.getLogger(__name__)

LEAD, DEAL = 1, 2
DEAL_FIELDS = ["id", "assignedById", "opportunity", "currencyId", "stageId", "stageSemanticId", "categoryId",
               "contactId", "companyId", "isReturnCustomer", "createdTime", "movedTime", "closedate"]
LEAD_FIELDS = ["id", "assignedById", "opportunity", "currencyId", "stageId", "stageSemanticId", "contactId",
               "companyId", "isReturnCustomer", "createdTime", "movedTime"]
HISTORY_FIELDS = ["ID", "OWNER_ID", "CREATED_TIME", "STAGE_ID", "STAGE_SEMANTIC_ID", "STATUS_ID",
                  "STATUS_SEMANTIC_ID", "CATEGORY_ID"]
_SEMANTIC = {"S": "won", "F": "lost"}  # P (and anything else): in progress
_EXTRA_SEMANTIC = {"success": "won", "failure": "lost", "apology": "lost"}


def _moment(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _text(value: Any) -> str | None:
    return None if value in (None, "", 0, "0") else str(value)


@dataclass
class _Command:
    method: str
    params: dict
    on_rows: Callable[[list[dict]], None]
    first_page: bool = False  # a list's first page: its total says which further pages to ask for


@dataclass
class _Rounds:
    """Commands sent in rounds of `batch`es; answers may queue more commands for the next round."""

    client: Bitrix24Client
    warnings: list[str] = field(default_factory=list)
    queue: list[_Command] = field(default_factory=list)

    def add(self, method: str, params: dict, on_rows: Callable[[list[dict]], None], *, paged: bool = False) -> None:
        self.queue.append(_Command(method, params, on_rows, first_page=paged))

    def run(self) -> None:
        while self.queue:
            round_, self.queue = self.queue, []
            for first in range(0, len(round_), PAGE):
                chunk = round_[first: first + PAGE]
                outcome = self.client.batch({f"q{i}": (c.method, c.params) for i, c in enumerate(chunk)})
                for index, command in enumerate(chunk):
                    key = f"q{index}"
                    if key in outcome.errors:
                        self.warnings.append(f"{command.method}: {outcome.errors[key]}")
                        continue
                    command.on_rows(_rows(outcome.results.get(key)))
                    total = outcome.totals.get(key, 0)
                    if command.first_page:
                        for start in range(PAGE, total, PAGE):  # ascending ids: offsets stay put
                            self.queue.append(_Command(command.method, {**command.params, "start": start},
                                                       command.on_rows))


def _rows(result: Any) -> list[dict]:
    """A list method's rows, whichever envelope it uses (a list, {"items": [...]}, {"categories": [...]})."""
    if isinstance(result, list):
        return result
    if isinstance(result, dict):
        for key in ("items", "categories"):
            if isinstance(result.get(key), list):
                return result[key]
    return []


class _Reader:
    def __init__(self, client: Bitrix24Client) -> None:
        self.rounds = _Rounds(client)
        self.deals: dict[str, dict] = {}  # the items as read; become `Deal`s once their history is in
        self.moves: dict[str, list[tuple[datetime, str, str]]] = {}  # deal key -> (at, stage, semantic)
        self.categories: dict[str, str] = {}
        self.statuses: list[dict] = []
        self.asked_history: set[str] = set()

    # --- answers ------------------------------------------------------------------------------------------
    def _items(self, kind: str) -> Callable[[list[dict]], None]:
        def take(rows: list[dict]) -> None:
            fresh = []
            for row in rows:
                key = f"lead:{row['id']}" if kind == "lead" else str(row["id"])
                if key not in self.deals:
                    self.deals[key] = {**row, "_kind": kind}
                    fresh.append(str(row["id"]))
            self._ask_history(kind, fresh)
        return take

    def _history(self, kind: str) -> Callable[[list[dict]], None]:
        def take(rows: list[dict]) -> None:
            for row in rows:
                key = f"lead:{row['OWNER_ID']}" if kind == "lead" else str(row["OWNER_ID"])
                at = _moment(row.get("CREATED_TIME"))
                stage = row.get("STATUS_ID") if kind == "lead" else row.get("STAGE_ID")
                semantic = row.get("STATUS_SEMANTIC_ID") if kind == "lead" else row.get("STAGE_SEMANTIC_ID")
                if at is not None and stage:
                    self.moves.setdefault(key, []).append((at, str(stage), str(semantic or "P")))
        return take

    def _ask_history(self, kind: str, ids: list[str]) -> None:
        ids = [i for i in ids if f"{kind}:{i}" not in self.asked_history]
        self.asked_history.update(f"{kind}:{i}" for i in ids)
        for first in range(0, len(ids), PAGE):
            self.rounds.add("crm.stagehistory.list", {
                "entityTypeId": LEAD if kind == "lead" else DEAL, "filter": {"@OWNER_ID": ids[first: first + PAGE]},
                "order": {"ID": "ASC"}, "select": HISTORY_FIELDS, "start": 0}, self._history(kind), paged=True)

    # --- questions ----------------------------------------------------------------------------------------
    def ask(self, deal_ids: list[str], lead_ids: list[str], managers: list[str], window: TimeWindow | None) -> None:
        rounds = self.rounds
        rounds.add("crm.category.list", {"entityTypeId": DEAL},
                   lambda rows: self.categories.update({str(r["id"]): str(r.get("name") or r["id"]) for r in rows}))
        rounds.add("crm.status.list", {"order": {"SORT": "ASC"}}, self.statuses.extend)
        for kind, ids, fields in (("deal", deal_ids, DEAL_FIELDS), ("lead", lead_ids, LEAD_FIELDS)):
            for first in range(0, len(ids), PAGE):
                rounds.add("crm.item.list", {"entityTypeId": DEAL if kind == "deal" else LEAD, "select": fields,
                                             "filter": {"@id": ids[first: first + PAGE]}, "order": {"id": "ASC"},
                                             "start": 0}, self._items(kind), paged=True)
        if managers and window is not None:  # the denominators: every deal the managers opened in the period
            since, until = (moment.isoformat(timespec="seconds") for moment in (window.since, window.until))
            rounds.add("crm.item.list", {"entityTypeId": DEAL, "select": DEAL_FIELDS, "order": {"id": "ASC"},
                                         "filter": {"@assignedById": managers, ">=createdTime": since,
                                                    "<createdTime": until}, "start": 0},
                       self._items("deal"), paged=True)
        rounds.run()

    # --- the snapshot -------------------------------------------------------------------------------------
    def funnels(self) -> list[Funnel]:
        stages: dict[str, list[Stage]] = {}
        for row in self.statuses:
            entity = str(row.get("ENTITY_ID") or "")
            if entity == "STATUS":
                funnel_id = "lead"
            elif entity == "DEAL_STAGE":
                funnel_id = "0"
            elif entity.startswith("DEAL_STAGE_"):
                funnel_id = entity.removeprefix("DEAL_STAGE_")
            else:
                continue
            extra = (row.get("EXTRA") or {}).get("SEMANTICS") if isinstance(row.get("EXTRA"), dict) else None
            semantic = _EXTRA_SEMANTIC.get(str(extra or ""), _SEMANTIC.get(str(row.get("SEMANTICS") or ""),
                                                                             "process"))
            stages.setdefault(funnel_id, []).append(Stage(id=str(row["STATUS_ID"]), name=str(row.get("NAME") or
                                                                                            row["STATUS_ID"]),
                                                          sort=int(row.get("SORT") or 0), semantic=semantic))
        funnels = [Funnel(id=funnel_id, name=self.categories.get(funnel_id, "Общая" if funnel_id == "0"
                                                                 else f"Воронка {funnel_id}"),
                          stages=stages.get(funnel_id, [])) for funnel_id in sorted({*self.categories, *stages} -
                                                                                    {"lead"}, key=_numeric)]
        if "lead" in stages:
            funnels.append(Funnel(id="lead", name="Лиды", kind="lead", stages=stages["lead"]))
        return funnels

    def deal(self, key: str) -> Deal:
        row = self.deals[key]
        kind = row["_kind"]
        moves = sorted(self.moves.get(key, []))
        semantic = _SEMANTIC.get(str(row.get("stageSemanticId") or ""))
        won_at = next((at for at, _, move_semantic in moves if move_semantic == "S"), None)
        if won_at is None and semantic == "won":  # no history (trimmed, or not readable): the last move
            won_at = _moment(row.get("movedTime")) or _moment(row.get("closedate"))
        amount = row.get("opportunity")
        return Deal(
            deal_id=key, kind=kind, manager_id=_text(row.get("assignedById")),
            amount=float(amount) if amount not in (None, "") else None, currency=_text(row.get("currencyId")),
            won=None if semantic is None else semantic == "won", won_at=won_at,
            repeat_customer=str(row.get("isReturnCustomer") or "N").upper() == "Y",
            funnel_id="lead" if kind == "lead" else str(row.get("categoryId") or 0),
            stage_id=_text(row.get("stageId")), created_at=_moment(row.get("createdTime")),
            contact_id=_text(row.get("contactId")), company_id=_text(row.get("companyId")),
            moves=[StageMove(stage_id=stage, at=at) for at, stage, _ in moves])


def _numeric(value: str) -> tuple[int, str]:
    return (int(value), value) if value.isdigit() else (1 << 30, value)


def _ids(values: Iterable[str | None]) -> list[str]:
    return sorted({value for value in values if value}, key=_numeric)


def read_crm(client: Bitrix24Client, records: list[CallRecord], window: TimeWindow | None, *, run_id: str,
             portal: str, refresh: Iterable[str] = (),
             clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> CrmSnapshot:
    """The CRM's side of a run's calls: their deals and leads, the managers' deals opened in `window`, stage
    histories and funnels. Sub-calls the portal refuses become the snapshot's warnings.

    `refresh`: more deals to read again ("lead:<id>" for leads) — earlier calls' deals still open, so that a deal
    won days after its call is seen won (the report's successful calls).

    Raises:
        Bitrix24Error: the portal refused the whole request (no CRM scope, a wrong webhook, ...).
    """
    reader = _Reader(client)
    again = list(refresh)
    targets = [record.crm_target or "" for record in records] + again
    reader.ask(deal_ids=_ids([record.deal_id for record in records] + [k for k in again if ":" not in k]),
               lead_ids=_ids([target.removeprefix("lead:") for target in targets if target.startswith("lead:")]),
               managers=_ids([record.manager for record in records]), window=window)
    for warning in reader.rounds.warnings:
        logger.warning("CRM data: %s", warning)
    return CrmSnapshot(portal=portal, run_id=run_id, read_at=clock(), since=window.since if window else None,
                       until=window.until if window else None, funnels=reader.funnels(),
                       deals=[reader.deal(key) for key in sorted(reader.deals, key=_numeric)],
                       warnings=reader.rounds.warnings)
