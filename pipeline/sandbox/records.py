"""The sandbox's CRM records, kept small (slots, no per-record dicts; a 10 000-deal portal stays a few MB) and
rendered on demand in both spellings the API uses: UPPER_CASE for the classic `crm.deal.*` methods, camelCase for
`crm.item.*` (api-reference/crm/universal/object-fields.md). Stage and status names are the portal's defaults."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["CATEGORIES", "DEAL_STAGES", "LEAD_STATUSES", "MSK", "Company", "Contact", "Deal", "HistoryEntry",
           "Lead", "iso_msk", "semantic_of", "status_rows"]

MSK = timezone(timedelta(hours=3))  # the portal's time zone: every date goes out with this offset


def iso_msk(moment: datetime) -> str:
    return moment.astimezone(MSK).isoformat(timespec="seconds")


# Funnel 0 carries Bitrix24's default deal stages; funnel 1's stage ids are prefixed C1: as the portal does.
CATEGORIES = {0: "Общая", 1: "Повторные продажи"}
_DEFAULT_STAGES = [("NEW", "Новая", "P"), ("PREPARATION", "Подготовка документов", "P"),
                   ("PREPAYMENT_INVOICE", "Счёт на предоплату", "P"), ("EXECUTING", "В работе", "P"),
                   ("FINAL_INVOICE", "Финальный счёт", "P"), ("WON", "Сделка успешна", "S"),
                   ("LOSE", "Сделка провалена", "F"), ("APOLOGY", "Анализ причины провала", "F")]
_REPEAT_STAGES = [("NEW", "Новая", "P"), ("PREPARATION", "Согласование", "P"), ("EXECUTING", "В работе", "P"),
                  ("WON", "Сделка успешна", "S"), ("LOSE", "Сделка провалена", "F")]
DEAL_STAGES: dict[int, list[tuple[str, str, str]]] = {
    0: _DEFAULT_STAGES,
    1: [(f"C1:{code}", name, semantic) for code, name, semantic in _REPEAT_STAGES],
}
LEAD_STATUSES = [("NEW", "Не обработан", "P"), ("IN_PROCESS", "В работе", "P"), ("PROCESSED", "Обработан", "P"),
                 ("CONVERTED", "Качественный лид", "S"), ("JUNK", "Некачественный лид", "F")]
_SEMANTICS = {stage: semantic for stages in [*DEAL_STAGES.values(), LEAD_STATUSES] for stage, _, semantic in stages}
_EXTRA = {"P": "process", "S": "success", "F": "failure"}


def semantic_of(stage_id: str) -> str:
    return _SEMANTICS.get(stage_id, "P")


def status_rows() -> list[dict]:
    """crm.status.list's rows (api-reference/crm/status/crm-status-list.md): deal stages per funnel
    (`DEAL_STAGE`, `DEAL_STAGE_<id>`) and lead statuses (`STATUS`)."""
    rows: list[dict] = []
    lists = [(f"DEAL_STAGE_{cat}" if cat else "DEAL_STAGE", cat, stages) for cat, stages in DEAL_STAGES.items()]
    for entity_id, category, stages in [*lists, ("STATUS", None, LEAD_STATUSES)]:
        for index, (status_id, name, semantic) in enumerate(stages):
            rows.append({"ID": str(len(rows) + 1), "ENTITY_ID": entity_id, "STATUS_ID": status_id, "NAME": name,
                         "NAME_INIT": name, "SORT": str(10 * (index + 1)), "SYSTEM": "Y" if semantic != "P" or
                         index == 0 else "N", "CATEGORY_ID": None if category is None else str(category),
                         "COLOR": "#39A8EF", "SEMANTICS": None if semantic == "P" else semantic,
                         "EXTRA": {"SEMANTICS": _EXTRA[semantic], "COLOR": "#39A8EF"}})
    return rows


@dataclass(slots=True)
class Contact:
    id: int
    name: str
    last_name: str
    company_id: int | None = None

    def upper(self) -> dict:
        return {"ID": str(self.id), "NAME": self.name, "LAST_NAME": self.last_name, "SECOND_NAME": None,
                "COMPANY_ID": None if self.company_id is None else str(self.company_id), "TYPE_ID": "CLIENT"}

    def camel(self) -> dict:
        return {"id": self.id, "name": self.name, "lastName": self.last_name, "secondName": None,
                "companyId": self.company_id, "typeId": "CLIENT"}


@dataclass(slots=True)
class Company:
    id: int
    title: str

    def upper(self) -> dict:
        return {"ID": str(self.id), "TITLE": self.title, "COMPANY_TYPE": "CUSTOMER"}

    def camel(self) -> dict:
        return {"id": self.id, "title": self.title, "companyTypeId": "CUSTOMER"}


def _money(value: float) -> str:
    return f"{value:.2f}"


@dataclass(slots=True)
class Deal:
    id: int
    title: str
    category_id: int
    stage_id: str
    assigned_by_id: int
    created: datetime
    moved: datetime
    opportunity: float = 0.0
    currency_id: str = "RUB"
    contact_id: int | None = None
    company_id: int | None = None
    is_return_customer: bool = False
    is_repeated_approach: bool = False
    user_fields: dict[str, Any] | None = None  # UF_CRM_* -> value; None until one is written

    @property
    def semantic(self) -> str:
        return semantic_of(self.stage_id)

    @property
    def closedate(self) -> datetime:
        return self.moved if self.semantic != "P" else self.created + timedelta(days=7)

    def upper(self) -> dict:
        closed = self.semantic != "P"
        row = {"ID": str(self.id), "TITLE": self.title, "TYPE_ID": "SALE", "CATEGORY_ID": str(self.category_id),
               "STAGE_ID": self.stage_id, "STAGE_SEMANTIC_ID": self.semantic, "IS_NEW": "N",
               "PROBABILITY": None, "CURRENCY_ID": self.currency_id, "OPPORTUNITY": _money(self.opportunity),
               "IS_MANUAL_OPPORTUNITY": "Y", "TAX_VALUE": "0.00", "LEAD_ID": None,
               "COMPANY_ID": str(self.company_id or 0), "CONTACT_ID": None if self.contact_id is None
               else str(self.contact_id), "BEGINDATE": iso_msk(self.created), "CLOSEDATE": iso_msk(self.closedate),
               "ASSIGNED_BY_ID": str(self.assigned_by_id), "CREATED_BY_ID": str(self.assigned_by_id),
               "MODIFY_BY_ID": str(self.assigned_by_id), "DATE_CREATE": iso_msk(self.created),
               "DATE_MODIFY": iso_msk(self.moved), "OPENED": "Y", "CLOSED": "Y" if closed else "N",
               "IS_RECURRING": "N", "IS_RETURN_CUSTOMER": "Y" if self.is_return_customer else "N",
               "IS_REPEATED_APPROACH": "Y" if self.is_repeated_approach else "N", "SOURCE_ID": "CALL",
               "MOVED_BY_ID": str(self.assigned_by_id), "MOVED_TIME": iso_msk(self.moved)}
        row.update(self.user_fields or {})
        return row

    def camel(self) -> dict:
        closed = self.semantic != "P"
        row = {"id": self.id, "title": self.title, "typeId": "SALE", "categoryId": self.category_id,
               "stageId": self.stage_id, "stageSemanticId": self.semantic, "isNew": "N", "probability": None,
               "currencyId": self.currency_id, "opportunity": self.opportunity, "isManualOpportunity": "Y",
               "taxValue": 0.0, "leadId": None, "companyId": self.company_id or 0, "contactId": self.contact_id,
               "contactIds": [] if self.contact_id is None else [self.contact_id],
               "begindate": iso_msk(self.created), "closedate": iso_msk(self.closedate),
               "assignedById": self.assigned_by_id, "createdBy": self.assigned_by_id,
               "updatedBy": self.assigned_by_id, "createdTime": iso_msk(self.created),
               "updatedTime": iso_msk(self.moved), "opened": "Y", "closed": "Y" if closed else "N",
               "isRecurring": "N", "isReturnCustomer": "Y" if self.is_return_customer else "N",
               "isRepeatedApproach": "Y" if self.is_repeated_approach else "N", "sourceId": "CALL",
               "movedBy": self.assigned_by_id, "movedTime": iso_msk(self.moved)}
        for name, value in (self.user_fields or {}).items():
            row[uf_camel(name)] = value
        return row


def uf_camel(name: str) -> str:
    """UF_CRM_CALLQA_SCORE -> ufCrmCallqaScore: crm.item.* spells user fields in camelCase (object-fields.md)."""
    head, *rest = name.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)


@dataclass(slots=True)
class Lead:
    id: int
    title: str
    status_id: str
    assigned_by_id: int
    created: datetime
    moved: datetime
    opportunity: float = 0.0
    contact_id: int | None = None

    @property
    def semantic(self) -> str:
        return semantic_of(self.status_id)

    def upper(self) -> dict:
        return {"ID": str(self.id), "TITLE": self.title, "STATUS_ID": self.status_id,
                "STATUS_SEMANTIC_ID": self.semantic, "OPPORTUNITY": _money(self.opportunity), "CURRENCY_ID": "RUB",
                "ASSIGNED_BY_ID": str(self.assigned_by_id), "CONTACT_ID": None if self.contact_id is None
                else str(self.contact_id), "DATE_CREATE": iso_msk(self.created), "DATE_MODIFY": iso_msk(self.moved),
                "DATE_CLOSED": iso_msk(self.moved) if self.semantic != "P" else "", "OPENED": "Y",
                "SOURCE_ID": "CALL", "IS_RETURN_CUSTOMER": "N", "MOVED_TIME": iso_msk(self.moved)}

    def camel(self) -> dict:
        return {"id": self.id, "title": self.title, "stageId": self.status_id, "stageSemanticId": self.semantic,
                "opportunity": self.opportunity, "currencyId": "RUB", "assignedById": self.assigned_by_id,
                "contactId": self.contact_id, "contactIds": [] if self.contact_id is None else [self.contact_id],
                "createdTime": iso_msk(self.created), "updatedTime": iso_msk(self.moved), "opened": "Y",
                "sourceId": "CALL", "isReturnCustomer": "N", "movedTime": iso_msk(self.moved)}


@dataclass(slots=True)
class HistoryEntry:
    """One crm.stagehistory.list row: TYPE_ID 1 created, 2 moved to an intermediate stage, 3 to a final one."""

    id: int
    entity_type_id: int  # 1 lead, 2 deal
    owner_id: int
    type_id: int
    category_id: int
    stage_id: str
    created: datetime

    def row(self) -> dict:
        semantic = semantic_of(self.stage_id)
        if self.entity_type_id == 1:  # leads carry STATUS_* and no funnel
            return {"ID": self.id, "TYPE_ID": self.type_id, "OWNER_ID": self.owner_id,
                    "CREATED_TIME": iso_msk(self.created), "STATUS_SEMANTIC_ID": semantic,
                    "STATUS_ID": self.stage_id}
        # Integers here, unlike crm.deal.list (the docs' example of crm.stagehistory.list).
        return {"ID": self.id, "TYPE_ID": self.type_id, "OWNER_ID": self.owner_id,
                "CREATED_TIME": iso_msk(self.created), "CATEGORY_ID": self.category_id,
                "STAGE_SEMANTIC_ID": semantic, "STAGE_ID": self.stage_id}
