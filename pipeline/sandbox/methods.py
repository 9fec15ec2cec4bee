"""The sandbox's non-CRM methods: telephony statistics and transcripts, disk files, activity bindings, users and
the webhook's own profile, notifications, and timeline comments."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pipeline.sandbox.portal import Portal, iso_msk
from pipeline.sandbox.query import ApiError, matches, page

__all__ = ["PortalMethods"]


class PortalMethods:
    """Mixed into `Sandbox`: every `_m_<method>` takes the parameters and returns (result, envelope extras)."""

    portal: Portal
    options: Any  # SandboxOptions
    base_url: str

    def download_token(self, file_id: str) -> str:
        raise NotImplementedError

    # --- telephony, disk, users -----------------------------------------------------------------------------
    def _m_voximplant_statistic_get(self, params: dict) -> tuple[Any, dict]:
        upper = {key.upper(): value for key, value in params.items()}  # the handler upper-cases keys
        conditions = {key.upper(): value for key, value in (upper.get("FILTER") or {}).items()}
        self.portal.listings += 1
        rows = []
        for row in self.portal.calls:
            if not matches(row, conditions):
                continue
            if row["CALL_ID"] in self.options.late_records and self.portal.listings == 1:
                row = {**row, "RECORD_FILE_ID": None, "RECORD_DURATION": None}
            rows.append(row)
        if upper.get("SORT") and upper.get("ORDER"):  # only both sort (core vi_rest.php)
            rows.sort(key=lambda r: int(r["ID"]) if upper["SORT"] == "ID" else str(r.get(upper["SORT"])),
                      reverse=str(upper["ORDER"]).upper() == "DESC")
        return page(rows, upper)

    def _m_disk_file_get(self, params: dict) -> tuple[Any, dict]:
        file_id = str(params.get("id", ""))
        data = self.portal.files.get(file_id)
        if data is None:
            raise ApiError("ERROR_NOT_FOUND", f"Could not find entity with id `{file_id}`")
        return {"ID": file_id, "NAME": f"2026-11-28 call {file_id}.mp3", "TYPE": "file", "SIZE": str(len(data)),
                "STORAGE_ID": "1", "PARENT_ID": "2", "DELETED_TYPE": "0", "FILE_ID": str(int(file_id) + 50000),
                "DOWNLOAD_URL": f"{self.base_url}/rest/download.json?auth=sandbox&token={self.download_token(file_id)}",
                "CREATE_TIME": iso_msk(datetime.now(UTC))}, {}

    def _m_crm_activity_binding_list(self, params: dict) -> tuple[Any, dict]:
        activity = str(params.get("activityId", ""))
        if activity not in self.portal.bindings:
            raise ApiError("NOT_FOUND", "Not found.")
        return self.portal.bindings[activity], {}

    def _m_user_get(self, params: dict) -> tuple[Any, dict]:
        conditions = params.get("FILTER") or params.get("filter") or {}
        if "ID" in params:
            conditions = {**conditions, "ID": params["ID"]}
        rows = [user for user in self.portal.users.values() if matches(user, conditions)]
        return page(rows, params)

    def _m_user_current(self, params: dict) -> tuple[Any, dict]:
        return self.portal.users[str(self.options.webhook_user)], {}

    def _m_profile(self, params: dict) -> tuple[Any, dict]:
        user = self.portal.users[str(self.options.webhook_user)]
        return {"ID": user["ID"], "ADMIN": self.options.webhook_admin, "NAME": user["NAME"],
                "LAST_NAME": user["LAST_NAME"], "PERSONAL_GENDER": "", "TIME_ZONE": ""}, {}

    def _m_telephony_call_attachtranscription(self, params: dict) -> tuple[Any, dict]:
        call_id = str(params.get("CALL_ID") or "")
        if not call_id:
            raise ApiError("ERROR_CORE", "CALL_ID should be set")
        messages = params.get("MESSAGES")
        if isinstance(messages, dict):  # a PHP-style query sends the array as a map of indexes
            messages = list(messages.values())
        if not isinstance(messages, list):
            raise ApiError("ERROR_CORE", "MESSAGES should be an array")
        for index, message in enumerate(messages):
            message = message if isinstance(message, dict) else {}
            if message.get("SIDE") not in ("Client", "User"):
                raise ApiError("ERROR_CORE", f"MESSAGES[{index}][SIDE] should be either Client or User")
            if not _number_at_least(message.get("START_TIME"), 0, strict=False):
                raise ApiError("ERROR_CORE", f"MESSAGES[{index}][START_TIME] should be greater or equal to zero")
            if not _number_at_least(message.get("STOP_TIME"), 0, strict=True):
                raise ApiError("ERROR_CORE", f"MESSAGES[{index}][STOP_TIME] should be greater than zero")
            if not str(message.get("MESSAGE") or "").strip():
                raise ApiError("ERROR_CORE", f"MESSAGES[{index}][MESSAGE] is empty")
        row = next((call for call in self.portal.calls if call["CALL_ID"] == call_id), None)
        if row is None:
            raise ApiError("ERROR_CORE", f"Call {call_id} is not found. Is it finished?")
        transcript_id = int(self.portal.new_id())
        self.portal.transcripts.setdefault(call_id, []).append(
            {"TRANSCRIPT_ID": transcript_id, "MESSAGES": messages, "COST": params.get("COST"),
             "COST_CURRENCY": params.get("COST_CURRENCY")})
        row["TRANSCRIPT_ID"] = str(transcript_id)
        return {"TRANSCRIPT_ID": transcript_id}, {}

    def _m_im_notify_system_add(self, params: dict) -> tuple[Any, dict]:
        try:
            user_id = int(params.get("USER_ID") or 0)
        except (TypeError, ValueError):
            user_id = 0
        if user_id <= 0:
            raise ApiError("USER_ID_EMPTY", "User ID can't be empty")
        message = str(params.get("MESSAGE") or "")
        if not message.strip():
            raise ApiError("MESSAGE_EMPTY", "Message can't be empty")
        notification_id = int(self.portal.new_id())
        self.portal.notifications.append({"ID": notification_id, "USER_ID": user_id, "MESSAGE": message,
                                          "TAG": params.get("TAG"), "SUB_TAG": params.get("SUB_TAG")})
        return notification_id, {}

    # --- timeline comments ----------------------------------------------------------------------------------
    def _entity(self, entity_type: str, entity_id: str) -> Any:
        tables: dict[str, dict[str, Any]] = {"deal": self.portal.deals, "contact": self.portal.contacts,
                                             "lead": self.portal.leads, "company": self.portal.companies}
        table = tables.get(entity_type, {})
        if entity_id not in table:
            raise ApiError("OWNER_NOT_FOUND", "Owner not found.")
        if entity_type == "deal" and entity_id in self.options.locked_deals:
            raise ApiError("ACCESS_DENIED", "Access denied.")  # HTTP 400, as the comment methods' page says
        return table[entity_id]

    def _m_crm_timeline_comment_add(self, params: dict) -> tuple[Any, dict]:
        if "fields" not in params:  # lowercase only since crm 23.100.0
            raise ApiError("100", "Required fields not found: fields")
        fields = params["fields"]
        entity_type, entity_id = str(fields.get("ENTITY_TYPE", "")).lower(), str(fields.get("ENTITY_ID", ""))
        self._entity(entity_type, entity_id)
        comment = str(fields.get("COMMENT", "")).strip()
        if not comment:
            raise ApiError("INVALID_ARG_VALUE", "Empty comment message")
        comment_id = self.portal.new_id()
        self.portal.comments[comment_id] = {"ID": comment_id, "ENTITY_ID": entity_id, "ENTITY_TYPE": entity_type,
                                            "CREATED": iso_msk(datetime.now(UTC)), "COMMENT": comment,
                                            "AUTHOR_ID": str(self.options.webhook_user), "FILES": []}
        return int(comment_id), {}

    def _m_crm_timeline_comment_update(self, params: dict) -> tuple[Any, dict]:
        comment = self.portal.comments.get(str(params.get("id", "")))
        if comment is None:
            raise ApiError("NOT_FOUND", "Not found.")
        self._entity(comment["ENTITY_TYPE"], comment["ENTITY_ID"])
        text = str((params.get("fields") or {}).get("COMMENT", "")).strip()
        if not text:
            raise ApiError("INVALID_ARG_VALUE", "Empty comment message")
        comment["COMMENT"] = text
        return int(comment["ID"]), {}

    def _m_crm_timeline_comment_get(self, params: dict) -> tuple[Any, dict]:
        comment = self.portal.comments.get(str(params.get("id", "")))
        if comment is None:
            raise ApiError("NOT_FOUND", "Not found.")
        return comment, {}

    def _m_crm_timeline_comment_list(self, params: dict) -> tuple[Any, dict]:
        conditions = params.get("filter") or {}
        if "ENTITY_ID" not in conditions or "ENTITY_TYPE" not in conditions:
            raise ApiError("", "ENTITY_ID and ENTITY_TYPE are required in the filter.")
        rows = [c for c in self.portal.comments.values() if c["ENTITY_ID"] == str(conditions["ENTITY_ID"])
                and c["ENTITY_TYPE"] == str(conditions["ENTITY_TYPE"]).lower()]
        return page(sorted(rows, key=lambda c: int(c["ID"])), params)


def _number_at_least(value: Any, bound: float, *, strict: bool) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return number > bound if strict else number >= bound
