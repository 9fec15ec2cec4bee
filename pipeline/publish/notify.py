"""A Bitrix24 notification (`im.notify.system.add`) when a call is auto-failed (a stop criterion broken sets its
total to 0): to the call's manager, or to a configured supervisor. Once per call: like a transcript, a
notification cannot be read back, so its ledger entry is written before the request and an ambiguous answer is
recorded and never sent again (a manager told twice of the same call is worse than a lost notice).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pipeline.bitrix24.client import Bitrix24Client
from pipeline.publish.ledgers import NotificationLedger, SendStatus, notification_ledger_key, now_iso, read_ledger
from pipeline.publish.once import OnceWrite, plan_each, send_once
from pipeline.publish.outcomes import WriteOutcome
from pipeline.schema import CallResult
from pipeline.stores import ArtifactStore

__all__ = ["METHOD", "NotifyPublisher", "render_notification"]

METHOD = "im.notify.system.add"


def render_notification(result: CallResult, *, deal_url: str | None = None) -> str:
    """The notification's text (Russian, BB-code): when, who, which stop criterion, and the deal's link."""
    score = result.score
    if score is None or not score.auto_failed:
        raise ValueError(f"{result.call_id} is not auto-failed")
    titles = {criterion.id: criterion.title for criterion in score.criteria}
    broken = ", ".join(f"«{titles.get(criterion_id, criterion_id)}»" for criterion_id in score.auto_failed)
    metadata = result.metadata
    when = (datetime.fromisoformat(metadata.started_at).strftime("%d.%m.%Y %H:%M") if metadata.started_at
            else "без даты")
    manager = metadata.manager_name or (f"сотрудник {metadata.manager_id}" if metadata.manager_id else "не указан")
    criteria = "нарушен стоп-критерий" if len(score.auto_failed) == 1 else "нарушены стоп-критерии"
    lines = ["[B]Звонок оценён в 0 баллов: " + criteria + "[/B]",
             f"Звонок {when}, менеджер: {manager}. {criteria.capitalize()}: {broken}."]
    if metadata.deal_id:
        link = deal_url.format(deal_id=metadata.deal_id) if deal_url else None
        lines.append(f"Сделка: [URL={link}]{metadata.deal_id}[/URL]" if link else f"Сделка {metadata.deal_id}.")
    return "\n".join(lines)


def _answer_id(answer: object) -> int | None:
    return int(answer) if isinstance(answer, int | str) and str(answer).isdigit() else None


class NotifyPublisher:
    def __init__(self, client: Bitrix24Client, store: ArtifactStore, *, notify_user: str | None = None,
                 deal_url: str | None = None, dry_run: bool = False,
                 show: Callable[[str, str], None] | None = None) -> None:
        self.client, self.store = client, store
        self.notify_user, self.deal_url, self.dry_run = notify_user, deal_url, dry_run
        self.show = show or (lambda key, text: None)

    def _plan(self, result: CallResult) -> OnceWrite | WriteOutcome | None:
        call_id = result.call_id
        if result.score is None or not result.score.auto_failed or not result.quality.passed:
            return None  # nothing to tell: not an outcome worth a line
        user_id = self.notify_user or result.metadata.manager_id
        if not user_id or not user_id.isdigit():
            return WriteOutcome("notification", call_id, "skipped", "no manager to notify (set publish.notify_user)")
        ledger = read_ledger(self.store, notification_ledger_key(call_id), NotificationLedger)
        if ledger is not None and ledger.settled:
            reason = "sent" if ledger.status == "sent" else f"{ledger.status} earlier: never sent again"
            return WriteOutcome("notification", call_id, "unchanged", reason)
        params = {"USER_ID": int(user_id), "MESSAGE": render_notification(result, deal_url=self.deal_url)}

        def entry(status: SendStatus, notification_id: int | None, reason: str) -> NotificationLedger:
            return NotificationLedger(call_id=call_id, user_id=user_id, status=status,
                                      notification_id=notification_id, sent_at=now_iso(), reason=reason)

        return OnceWrite("notification", call_id, notification_ledger_key(call_id), METHOD, params, entry)

    def publish(self, results: list[CallResult]) -> list[WriteOutcome]:
        """Notify of every auto-failed call not notified yet; an outcome per auto-failed call."""
        outcomes, writes = plan_each("notification", results, self._plan)
        if self.dry_run:
            for write in writes:
                self.show(write.key, f"notification to user {write.params['USER_ID']}:\n{write.params['MESSAGE']}")
            return outcomes + [WriteOutcome("notification", w.key, "dry-run") for w in writes]
        return outcomes + send_once(self.client, self.store, writes, _answer_id)
