"""A local Bitrix24 portal for tests and the demo: real HTTP on loopback, behaving as the documented API does for
what callqa uses (../shared/reference/bitrix24-rest.md): webhook and OAuth auth, the `time` block, paging,
`batch` with PHP-style commands, the leaky bucket, error envelopes, signed download URLs serving audio,
telephony statistics and transcripts, activity bindings, CRM records (deals, leads, contacts, companies, stage
history, funnels, statuses, user fields; `crm.item.*` and the classic methods), users, notifications and timeline
comments. Method names are case-insensitive, `batch` resolves `$result[...]` references, https on request.

Faults on demand: a share of 503s and of HTML error pages, OAuth tokens that expire (after a time, or after a
number of requests), writes applied and then left unanswered (the client times out) or answered 500, the
operating-time limit (on the portal's own clock, which tests move), recordings that arrive late, a deal the
webhook may not edit, missing scopes, a webhook user who is no admin. Tests use the faults that do not depend
on how fast the machine is: tokens that
die after N requests, hangs released by an event when the sandbox stops.

    from pipeline.sandbox import Portal, SandboxOptions, serve

    portal = Portal.from_folder(Path("tests/data/calls"), day=date(2026, 11, 28))
    with serve(portal, SandboxOptions()) as sandbox:
        print(sandbox.webhook_url)

Only `callqa sandbox` and `callqa demo` import it (lazily), and tests; nothing else in callqa may (a test checks).
"""

from pipeline.sandbox.api import ApiError, Sandbox, SandboxOptions
from pipeline.sandbox.portal import MSK, CallSpec, Portal
from pipeline.sandbox.records import Company, Contact, Deal, HistoryEntry, Lead
from pipeline.sandbox.server import Running, serve

__all__ = ["MSK", "ApiError", "CallSpec", "Company", "Contact", "Deal", "HistoryEntry", "Lead", "Portal", "Running",
           "Sandbox", "SandboxOptions", "serve"]
