"""What publishing writes into Bitrix24 besides the score comment: the `publish:` section of the config file."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["PublishSettings", "UserField"]

# crm.deal.userfield.add: the full name starts with UF_CRM_, holds A-Z, 0-9 and _, at most 50 characters.
_FIELD_NAME = re.compile(r"UF_CRM_[A-Z0-9_]{1,43}")


class UserField(BaseModel):
    """A deal user field callqa fills: its full name and the title Bitrix24 users see (Russian)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    title: str = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _FIELD_NAME.fullmatch(value):
            raise ValueError("a deal field's name is UF_CRM_ followed by A-Z, 0-9 and _ (50 characters at most), "
                             f"got {value!r}")
        return value


class PublishSettings(BaseModel):
    """Each kind is written exactly once (a ledger per kind in the artifact store) and each can be switched off;
    the score comment is always written.

    Attributes:
        transcripts: attach the transcript, who said what, to the call itself (its card in Bitrix24 shows it).
        deal_fields: fill the deal's user fields with the latest scored call's score and grade and the number
            of scored calls (created at the start of publishing when missing, which needs an admin's webhook).
        score_field, grade_field, calls_field: the names and titles of those fields.
        notify_auto_fail: send a Bitrix24 notification when a call is auto-failed (a stop criterion broken).
        notify_user: the user id that gets those notifications (a supervisor); default: the call's manager.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    transcripts: bool = True
    deal_fields: bool = True
    score_field: UserField = UserField(name="UF_CRM_CALLQA_SCORE", title="Оценка звонка, баллы (callqa)")
    grade_field: UserField = UserField(name="UF_CRM_CALLQA_GRADE", title="Оценка звонка, из 5 (callqa)")
    calls_field: UserField = UserField(name="UF_CRM_CALLQA_CALLS", title="Оценено звонков (callqa)")
    notify_auto_fail: bool = True
    notify_user: str | None = None

    @field_validator("notify_user", mode="before")
    @classmethod
    def _user_id(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # `notify_user: 15` in YAML
        if value is not None and not (isinstance(value, str) and value.isdigit() and int(value) > 0):
            raise ValueError(f"publish.notify_user is a Bitrix24 user id (a positive number), got {value!r}")
        return value

    @property
    def fields(self) -> tuple[UserField, UserField, UserField]:
        return self.score_field, self.grade_field, self.calls_field
