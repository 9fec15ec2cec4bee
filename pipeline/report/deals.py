"""Deal data for the report: a CSV a CRM export can produce (the Bitrix24 source will fill the same model).

Columns: deal_id, manager_id, amount, currency, won (yes|no|empty while open), repeat_customer (yes|no), and the
times the deal entered each stage of the phone funnel: lead_at, qualification_at, offer_at, aftersale_at
(ISO 8601). Only deal_id is required.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from pipeline.errors import ConfigError
from pipeline.report.model import FUNNEL_STAGES, Deal

__all__ = ["parse_deals"]

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
                stage_entered=entered)
        except ValueError as error:
            raise ConfigError(f"{place}: {error}") from error
    return deals
