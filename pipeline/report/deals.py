"""Deal data for the report from a CSV a CRM export can produce (`--deals`: it overrides what the runs read from
Bitrix24, pipeline/bitrix24/crm.py, which fills the same model).

Columns: deal_id, manager_id, amount, currency, won (yes|no|empty while open), repeat_customer (yes|no), and the
times the deal entered each stage of the phone funnel: lead_at, qualification_at, offer_at, aftersale_at
(ISO 8601). Only deal_id is required.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipeline.errors import ConfigError
from pipeline.report.model import FUNNEL_STAGES, CrmSnapshot, Deal, Funnel, StageMove
from pipeline.stores import ArtifactStore

__all__ = ["CrmData", "load_snapshots", "merge_snapshots", "parse_deals"]

YES = {"yes", "y", "да", "true", "1"}
NO = {"no", "n", "нет", "false", "0"}


def _flag(value: str, where: str) -> bool | None:
    lowered = value.strip().lower()
    if not lowered:
        return None
    if lowered in YES:
        return True
    if lowered in NO:
        return False
    raise ConfigError(f"{where}: expected yes or no, got {value!r}")


def parse_deals(text: str, where: str) -> dict[str, Deal]:
    deals = {}
    reader = csv.DictReader(io.StringIO(text))
    if "deal_id" not in (reader.fieldnames or ()):
        raise ConfigError(f"{where}:1: the deals file needs a deal_id column")
    for line, row in enumerate(reader, start=2):
        place = f"{where}:{line}"
        try:
            entered = {}
            for stage in FUNNEL_STAGES:
                value = (row.get(f"{stage}_at") or "").strip()
                if value:
                    moment = datetime.fromisoformat(value)
                    entered[stage] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            amount = (row.get("amount") or "").strip().replace(",", ".").replace(" ", "")
            deals[row["deal_id"].strip()] = Deal(
                deal_id=row["deal_id"].strip(), manager_id=(row.get("manager_id") or "").strip() or None,
                amount=float(amount) if amount else None, currency=(row.get("currency") or "").strip() or None,
                won=_flag(row.get("won") or "", place), repeat_customer=bool(_flag(row.get("repeat_customer") or "",
                                                                                   place)),
                moves=sorted((StageMove(stage_id=stage, at=at) for stage, at in entered.items()),
                             key=lambda move: move.at))
        except ValueError as error:
            raise ConfigError(f"{place}: {error}") from error
    return deals


def _older_run(key: str, since: datetime) -> bool:
    """Named by a run that started well before `since` (run ids begin with the run's local start time), so the
    nightly run does not read a year of snapshots to find the last month's."""
    try:
        started = datetime.strptime(key.removeprefix("crm/")[:15], "%Y%m%dT%H%M%S")
    except ValueError:
        return False  # not a run's name: read it and see
    return started < since.astimezone().replace(tzinfo=None) - timedelta(days=1)  # a day's slack for time zones


def load_snapshots(store: ArtifactStore, *, read_since: datetime | None = None) -> tuple[list[CrmSnapshot], list[str]]:
    """The CRM snapshots the runs stored (`crm/<run_id>.json`), oldest read first, and the keys that could not be
    read as one (reported, not fatal). `read_since`: only those read since then."""
    snapshots, unreadable = [], []
    for key in store.list("crm/"):
        if not key.endswith(".json") or (read_since is not None and _older_run(key, read_since)):
            continue
        data = store.read(key)
        try:
            snapshot = CrmSnapshot.model_validate_json(data or b"")
        except ValueError:
            unreadable.append(key)
            continue
        if read_since is None or snapshot.read_at >= read_since:
            snapshots.append(snapshot)
    snapshots.sort(key=lambda snapshot: snapshot.read_at)
    return snapshots, unreadable


@dataclass(frozen=True)
class CrmData:
    """What the report knows of the CRM: deals and leads by id, the funnels, and where they came from."""

    deals: dict[str, Deal]
    funnels: list[Funnel]
    source: str | None


def merge_snapshots(snapshots: list[CrmSnapshot]) -> CrmData:
    """One view of several runs' snapshots: a deal read again later (its stage moved on) replaces what an
    earlier run read; so does a funnel."""
    deals: dict[str, Deal] = {}
    funnels: dict[str, Funnel] = {}
    for snapshot in sorted(snapshots, key=lambda s: s.read_at):
        deals.update((deal.deal_id, deal) for deal in snapshot.deals)
        funnels.update((funnel.id, funnel) for funnel in snapshot.funnels)
    portals = sorted({snapshot.portal for snapshot in snapshots})
    return CrmData(deals=deals, funnels=list(funnels.values()),
                   source=f"Bitrix24 {', '.join(portals)}" if portals else None)
