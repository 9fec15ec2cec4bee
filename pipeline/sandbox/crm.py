"""The sandbox's CRM methods, as the docs describe them (api-reference/crm/...): `crm.item.*` (camelCase,
entityTypeId 1 lead, 2 deal, 3 contact, 4 company), the classic `crm.deal.*`, `crm.lead.*`, `crm.contact.*`,
`crm.company.*` (UPPER_CASE, errors with an empty code), `crm.stagehistory.list`, `crm.status.list`,
`crm.category.list` and the deal user fields."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pipeline.sandbox.portal import Portal
from pipeline.sandbox.query import ApiError, field_key, matches, page, select, sort_rows, split_operator
from pipeline.sandbox.records import CATEGORIES, DEAL_STAGES, status_rows, uf_camel

__all__ = ["CrmMethods"]

_ENTITY_TABLES = {1: "leads", 2: "deals", 3: "contacts", 4: "companies"}
_CLASSIC = {"lead": 1, "deal": 2, "contact": 3, "company": 4}
_USER_TYPES = {"string", "integer", "double", "boolean", "datetime", "date", "enumeration", "url", "money",
               "employee", "crm", "file", "address", "crm_status"}


def _entity_type(params: dict) -> int:
    try:
        entity_type = int(params.get("entityTypeId", params.get("ENTITY_TYPE_ID", 0)))
    except (TypeError, ValueError):
        entity_type = 0
    if entity_type not in _ENTITY_TABLES:
        raise ApiError("NOT_FOUND", "Смарт-процесс не найден")
    return entity_type


def _wanted_ids(conditions: dict, name: str) -> list[str] | None:
    """The ids a filter asks for by `name` (`id`, `=id` or `@id`, any case), or None when it does not."""
    for key, value in conditions.items():
        op, field = split_operator(str(key))
        if op in ("", "=", "@") and field_key(field) == field_key(name):
            values = value if isinstance(value, list) else [value]
            try:
                return [str(int(v)) for v in values]
            except (TypeError, ValueError):
                return None
    return None


def _positive_id(params: dict) -> str | None:
    raw = params.get("id", params.get("ID"))
    try:
        return str(int(raw)) if raw is not None and int(raw) > 0 else None
    except (TypeError, ValueError):
        return None


class CrmMethods:
    """Mixed into `Sandbox`: every `_m_<method>` takes the parameters and returns (result, envelope extras)."""

    portal: Portal
    options: Any  # SandboxOptions: locked_deals, webhook_admin

    # --- records ----------------------------------------------------------------------------------------------
    def _history_index(self) -> dict[tuple[int, str], list]:
        """History entries by (entity type, owner id), rebuilt when the history changed (tests seed thousands)."""
        history = self.portal.history
        stamp = (id(history), len(history))
        if getattr(self, "_history_stamp", None) != stamp:
            index: dict[tuple[int, str], list] = {}
            for entry in history:
                index.setdefault((entry.entity_type_id, str(entry.owner_id)), []).append(entry)
            self._history_by_owner, self._history_stamp = index, stamp
        return self._history_by_owner

    def _table(self, entity_type: int) -> dict:
        return getattr(self.portal, _ENTITY_TABLES[entity_type])

    def _list(self, entity_type: int, params: dict, *, camel: bool) -> tuple[list[dict], dict]:
        conditions = params.get("filter") or params.get("FILTER") or {}
        if not isinstance(conditions, dict):
            raise ApiError("" if not camel else "INVALID_ARG_VALUE", "Parameter 'filter' must be array.")
        table = self._table(entity_type)
        order = params.get("order") or params.get("ORDER")
        # The ids a filter and order give, kept per portal revision: a client paging 10 000 deals asks the same
        # question 200 times, and serialising every record for every page would make the sandbox the bottleneck.
        key = (entity_type, camel, json.dumps([conditions, order], sort_keys=True, default=str),
               self.portal.revision, len(table))
        cache = self.__dict__.setdefault("_list_cache", {})
        ordered = cache.get(key)
        if ordered is None:
            ids = _wanted_ids(conditions, "id")  # by id: look them up rather than serialise every record
            records = table.values() if ids is None else [table[i] for i in ids if i in table]
            rows = [record.camel() if camel else record.upper() for record in records]
            known = {field_key(name) for name in rows[0]} if camel and rows else None
            rows = [row for row in rows if matches(row, conditions, known=known)]
            rows = sort_rows(rows, order, default="id" if camel else "ID")
            ordered = [str(row["id" if camel else "ID"]) for row in rows]
            if len(cache) > 16:
                cache.clear()
            cache[key] = ordered
        chosen = params.get("select") or params.get("SELECT")
        chunk, extra = page(ordered, params)
        rows = [table[i].camel() if camel else table[i].upper() for i in chunk if i in table]
        return [select(row, chosen if isinstance(chosen, list) else None) for row in rows], extra

    def _record(self, entity_type: int, record_id: str | None, *, camel: bool) -> Any:
        record = self._table(entity_type).get(record_id or "")
        if record is None:
            if camel:
                raise ApiError("NOT_FOUND", "Элемент не найден")
            raise ApiError("", "ID is not defined or invalid" if record_id is None else "Not found")
        return record

    def _m_crm_item_list(self, params: dict) -> tuple[Any, dict]:
        items, extra = self._list(_entity_type(params), params, camel=True)
        return {"items": items}, extra

    def _m_crm_item_get(self, params: dict) -> tuple[Any, dict]:
        entity_type = _entity_type(params)
        return {"item": self._record(entity_type, _positive_id(params), camel=True).camel()}, {}

    def _m_crm_item_update(self, params: dict) -> tuple[Any, dict]:
        entity_type = _entity_type(params)
        record_id = _positive_id(params)
        record = self._record(entity_type, record_id, camel=True)
        if entity_type == 2 and record_id in self.options.locked_deals:
            raise ApiError("ACCESS_DENIED", "Доступ запрещен")
        fields = params.get("fields") or {}
        if entity_type == 2:
            self._update_deal(record, fields, camel=True)
        elif "title" in fields:
            self.portal.revision += 1
            record.title = str(fields["title"])
        return {"item": record.camel()}, {}

    def _update_deal(self, deal, fields: dict, *, camel: bool) -> None:
        self.portal.revision += 1  # what a filter matches may have changed
        if not isinstance(fields, dict):
            raise ApiError("", "Parameter 'fields' must be array.")
        by_key = {field_key(str(name)): value for name, value in fields.items()}
        user_fields = {}
        for name, value in fields.items():
            upper = self._user_field_name(str(name))
            if upper is not None:
                user_fields[upper] = value
        stage = by_key.get("stageid")
        if stage is not None and stage != deal.stage_id:
            if stage not in {code for code, _, _ in DEAL_STAGES[deal.category_id]}:
                code = "CRM_FIELD_ERROR_VALUE_NOT_VALID" if camel else ""
                raise ApiError(code, f"Неверное значение поля \"{'stageId' if camel else 'STAGE_ID'}\"")
            moved = datetime.now(deal.created.tzinfo)  # a write through the API happens now
            self.portal.add_history(2, deal.id, stage, moved, category_id=deal.category_id)
            deal.stage_id, deal.moved = stage, moved
        if "opportunity" in by_key:
            deal.opportunity = float(by_key["opportunity"] or 0)
        if "title" in by_key:
            deal.title = str(by_key["title"])
        if user_fields:
            deal.user_fields = {**(deal.user_fields or {}), **user_fields}

    def _user_field_name(self, name: str) -> str | None:
        """UF_CRM_X or its camelCase ufCrmX -> UF_CRM_X, when such a deal user field exists."""
        for field_name in self.portal.deal_user_fields:
            if name == field_name or name == uf_camel(field_name):
                return field_name
        return None

    # --- the classic methods ----------------------------------------------------------------------------------
    def _classic_list(self, entity: str, params: dict) -> tuple[Any, dict]:
        return self._list(_CLASSIC[entity], params, camel=False)

    def _classic_get(self, entity: str, params: dict) -> tuple[Any, dict]:
        return self._record(_CLASSIC[entity], _positive_id(params), camel=False).upper(), {}

    def _m_crm_deal_list(self, params: dict) -> tuple[Any, dict]:
        return self._classic_list("deal", params)

    def _m_crm_deal_get(self, params: dict) -> tuple[Any, dict]:
        return self._classic_get("deal", params)

    def _m_crm_deal_update(self, params: dict) -> tuple[Any, dict]:
        record_id = _positive_id(params)
        deal = self._record(2, record_id, camel=False)
        if record_id in self.options.locked_deals:
            raise ApiError("", "Access denied")
        self._update_deal(deal, params.get("fields") or params.get("FIELDS") or {}, camel=False)
        return True, {}

    def _m_crm_lead_list(self, params: dict) -> tuple[Any, dict]:
        return self._classic_list("lead", params)

    def _m_crm_lead_get(self, params: dict) -> tuple[Any, dict]:
        return self._classic_get("lead", params)

    def _m_crm_contact_list(self, params: dict) -> tuple[Any, dict]:
        return self._classic_list("contact", params)

    def _m_crm_contact_get(self, params: dict) -> tuple[Any, dict]:
        return self._classic_get("contact", params)

    def _m_crm_company_list(self, params: dict) -> tuple[Any, dict]:
        return self._classic_list("company", params)

    def _m_crm_company_get(self, params: dict) -> tuple[Any, dict]:
        return self._classic_get("company", params)

    # --- funnels, stages, history -----------------------------------------------------------------------------
    def _m_crm_stagehistory_list(self, params: dict) -> tuple[Any, dict]:
        entity_type = _entity_type(params)
        if entity_type not in (1, 2):
            raise ApiError("NOT_FOUND", "Смарт-процесс не найден")
        owners = _wanted_ids(params.get("filter") or {}, "OWNER_ID")
        if owners is None:
            entries: Iterable = self.portal.history
        else:
            index = self._history_index()
            entries = [entry for owner in owners for entry in index.get((entity_type, owner), [])]
        rows = [entry.row() for entry in entries if entry.entity_type_id == entity_type]
        rows = [row for row in rows if matches(row, params.get("filter") or {})]
        rows = sort_rows(rows, params.get("order"))
        chunk, extra = page(rows, params)
        chosen = params.get("select")
        return {"items": [select(row, chosen if isinstance(chosen, list) else None) for row in chunk]}, extra

    def _m_crm_status_list(self, params: dict) -> tuple[Any, dict]:
        rows = [row for row in status_rows() if matches(row, params.get("filter") or {})]
        rows = sort_rows(rows, params.get("order") or {"SORT": "ASC"})
        return rows, {"total": len(rows)}

    def _m_crm_category_list(self, params: dict) -> tuple[Any, dict]:
        if _entity_type(params) != 2:
            return {"categories": []}, {"total": 0}
        categories = [{"id": category, "name": name, "sort": 100 * (category + 1), "entityTypeId": 2,
                       "isDefault": "Y" if category == 0 else "N", "originId": "", "originatorId": ""}
                      for category, name in CATEGORIES.items()]
        return {"categories": categories}, {"total": len(categories)}

    # --- deal user fields ---------------------------------------------------------------------------------
    def _m_crm_deal_userfield_list(self, params: dict) -> tuple[Any, dict]:
        rows = [row for row in self.portal.deal_user_fields.values() if matches(row, params.get("filter") or {})]
        return page(sort_rows(rows, params.get("order")), params)

    def _m_crm_deal_userfield_add(self, params: dict) -> tuple[Any, dict]:
        if not self.options.webhook_admin:  # "Кто может выполнять метод: администратор CRM"
            raise ApiError("ACCESS_DENIED", "Access denied.")
        fields = params.get("fields") or {}
        name = str(fields.get("FIELD_NAME") or "").strip()
        if not name:
            raise ApiError("", "The 'FIELD_NAME' field is not found.")
        if not fields.get("USER_TYPE_ID"):
            raise ApiError("", "The 'USER_TYPE_ID' field is not found.")
        full = name if name.startswith("UF_CRM_") else f"UF_CRM_{name}"  # the prefix is added, as the docs say
        if not re.fullmatch(r"[A-Z0-9_]+", full):
            raise ApiError("ERROR_CORE", "Имя поля содержит недопустимые символы. Допустимыми являются: A-Z, 0-9 и _.")
        if len(full) > 50:
            raise ApiError("ERROR_CORE", "Имя поля слишком длинное (больше 50-ти символов).")
        if fields["USER_TYPE_ID"] not in _USER_TYPES:
            raise ApiError("ERROR_CORE", "Указан неверный пользовательский тип.")
        if full in self.portal.deal_user_fields:
            raise ApiError("ERROR_CORE", "Ошибка при добавлении пользовательского поля: поле с таким кодом уже "
                                         "существует.")
        field_id = int(self.portal.new_id())
        self.portal.deal_user_fields[full] = {
            "ID": str(field_id), "ENTITY_ID": "CRM_DEAL", "FIELD_NAME": full,
            "USER_TYPE_ID": fields["USER_TYPE_ID"], "XML_ID": fields.get("XML_ID"),
            "SORT": str(fields.get("SORT", 100)), "MULTIPLE": fields.get("MULTIPLE", "N"),
            "MANDATORY": fields.get("MANDATORY", "N"), "SHOW_FILTER": fields.get("SHOW_FILTER", "N"),
            "SHOW_IN_LIST": fields.get("SHOW_IN_LIST", "Y"), "EDIT_IN_LIST": fields.get("EDIT_IN_LIST", "Y"),
            "IS_SEARCHABLE": fields.get("IS_SEARCHABLE", "N"), "SETTINGS": fields.get("SETTINGS") or {}}
        return field_id, {}

