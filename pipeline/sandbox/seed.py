"""The CRM data of a phone funnel around the seeded calls, and many cheap deals for memory tests and benchmarks.

Deterministic: every choice comes from the deal's id or its rank, every time from the call or the `day` given,
never from the wall clock.

Deals bound to calls (`seed_funnel`), taken in id order, cycle through ten outcomes: 4 won, 2 lost, 4 in progress
(`_OUTCOMES`). A won deal moves to WON, a lost one to LOSE or APOLOGY, a few hours after its call and before the end
of the call's day; each was created at NEW 1-5 days before the call and moved through intermediate stages before
it. Every fourth deal is a returning customer's (IS_RETURN_CUSTOMER "Y") in funnel 1 "Повторные продажи" (stages
C1:*); every third contact has a company. Each manager also gets three deals of the call's day with no call.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta

from pipeline.sandbox.records import DEAL_STAGES, MSK, Company, Contact, Deal

__all__ = ["seed_deals", "seed_funnel"]

_OUTCOMES = "SPSFPSPFSP"  # by rank: S won, F lost, P in progress -> 40 % won, 20 % lost
_FIRST_NAMES = ("Иван", "Анна", "Сергей", "Елена", "Павел", "Ольга", "Николай", "Татьяна")
_LAST_NAMES = ("Иванов", "Смирнова", "Кузнецов", "Попова", "Васильев", "Петрова", "Соколов", "Михайлова")
_COMPANIES = ("ООО «Вектор»", "АО «СтройИнвест»", "ООО «Северный ветер»", "ИП Громов", "ООО «Техносфера»")


def _number(*parts: object) -> int:
    """A stable pseudo-random number from the parts (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha1("|".join(map(str, parts)).encode()).digest()[:4], "big")


def _path(deal_id: int, category: int, outcome: str, created: datetime, pivot: datetime,
          end_of_day: datetime) -> list[tuple[str, datetime]]:
    """NEW at `created`, intermediate stages between then and `pivot` (the call), then for a closed deal its final
    stage a few hours after the pivot, before `end_of_day`."""
    stages = DEAL_STAGES[category]
    process = [stage for stage, _, semantic in stages if semantic == "P"]
    won = next(stage for stage, _, semantic in stages if semantic == "S")
    lost = [stage for stage, _, semantic in stages if semantic == "F"]
    reached = 1 + _number(deal_id, "reached") % (len(process) - 1)  # how far through the process stages
    steps = process[: reached + 1]
    span = (pivot - created) / (len(steps) + 1)
    path = [(stage, created + span * index) for index, stage in enumerate(steps)]
    if outcome != "P":
        final = won if outcome == "S" else lost[_number(deal_id, "lost") % len(lost)]
        at = min(pivot + timedelta(hours=1 + _number(deal_id, "hours") % 4), end_of_day - timedelta(minutes=5))
        path.append((final, at))
    return path


def _contact(portal, key: object, *, with_company: bool) -> int:
    contact_id = int(portal.new_id())
    company_id = None
    if with_company:
        company_id = int(portal.new_id())
        portal.companies[str(company_id)] = Company(company_id, _COMPANIES[_number(key, "co") % len(_COMPANIES)])
    portal.contacts[str(contact_id)] = Contact(contact_id, _FIRST_NAMES[_number(key, "fn") % len(_FIRST_NAMES)],
                                               _LAST_NAMES[_number(key, "ln") % len(_LAST_NAMES)], company_id)
    return contact_id


def seed_funnel(portal, *, day: date) -> None:
    """Give the deals bound to the portal's calls amounts, contacts, outcomes and histories, and add deals of
    `day` without a call for each manager (the funnel's denominators)."""
    end_of_day = datetime.combine(day, datetime.min.time(), tzinfo=MSK) + timedelta(days=1)
    first_call: dict[str, datetime] = {}
    for call in portal.calls:
        started = datetime.fromisoformat(call["CALL_START_DATE"])
        for binding in portal.bindings.get(call["CRM_ACTIVITY_ID"], []):
            if binding["entityTypeId"] == 2:
                first_call.setdefault(str(binding["entityId"]), started)
    with portal.lock:
        history_of = {str(deal_id) for deal_id in first_call}
        portal.history = [entry for entry in portal.history if not (entry.entity_type_id == 2 and
                                                                    str(entry.owner_id) in history_of)]
        for rank, deal_id in enumerate(sorted(first_call, key=int)):
            old = portal.deals[deal_id]
            call_at = first_call[deal_id]
            returning = rank % 4 == 3
            category = 1 if returning else 0
            contact_id = _contact(portal, deal_id, with_company=rank % 3 == 1)
            created = call_at - timedelta(days=1 + _number(deal_id, "age") % 5, hours=_number(deal_id, "h") % 5)
            deal = Deal(int(deal_id), old.title, category, "", old.assigned_by_id, created, created,
                        opportunity=float(15_000 + 1_000 * (_number(deal_id, "sum") % 120)), contact_id=contact_id,
                        company_id=portal.contacts[str(contact_id)].company_id, is_return_customer=returning)
            outcome = _OUTCOMES[rank % len(_OUTCOMES)]
            portal.add_deal(deal, path=_path(deal.id, category, outcome, created, call_at, end_of_day))
        managers = sorted({str(deal.assigned_by_id) for deal in portal.deals.values()}, key=int)
        morning = end_of_day - timedelta(hours=15)  # 09:00 of the day
        for manager in managers:
            for index in range(3):
                new_id = int(portal.new_id())
                created = morning + timedelta(minutes=40 * index + _number(new_id, "m") % 30)
                contact_id = _contact(portal, new_id, with_company=index == 1)
                deal = Deal(new_id, f"Заявка с сайта {deal_id}", 0, "", int(manager), created, created,
                            opportunity=float(10_000 + 1_000 * (_number(new_id, "sum") % 60)),
                            contact_id=contact_id, company_id=portal.contacts[str(contact_id)].company_id)
                outcome = "S" if index == 2 and int(manager) % 2 == 0 else "P"
                pivot = created + timedelta(hours=2)
                portal.add_deal(deal, path=_path(new_id, 0, outcome, created, pivot, end_of_day))


def seed_deals(portal, count: int, *, day: date, managers: tuple[str, ...], first_id: int) -> list[Deal]:
    """`count` deals created on `day`, outcomes and histories as in `seed_funnel`, no contacts (a memory test
    and a benchmark: a deal and its 3-6 history rows cost well under a kilobyte)."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=MSK) + timedelta(hours=8)
    end_of_day = start + timedelta(hours=16)
    added: list[Deal] = []
    with portal.lock:
        for manager in managers:
            portal.add_user(manager, f"Менеджер {manager}")
        for index in range(count):
            deal_id = first_id + index
            created = start + timedelta(seconds=(index * 37) % (8 * 3600))
            deal = Deal(deal_id, f"Сделка {deal_id}", index % 2 if index % 5 == 4 else 0, "",
                        int(managers[index % len(managers)]), created, created,
                        opportunity=float(5_000 + 500 * (index % 200)), is_return_customer=index % 7 == 0)
            path = _path(deal_id, deal.category_id, _OUTCOMES[index % len(_OUTCOMES)], created,
                         created + timedelta(hours=2), end_of_day)
            added.append(portal.add_deal(deal, path=path))
        portal.next_id = max(portal.next_id, first_id + count)
    return added
