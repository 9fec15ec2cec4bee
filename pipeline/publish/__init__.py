"""Where results go after the store: Bitrix24 (`bitrix24`): the score comment (written as `comment` says), the
transcript on the call (`transcript`), the deal's fields (`deal_fields`), auto-fail notifications (`notify`),
each exactly once (`ledgers`, `once`), as `settings.PublishSettings` switches them.

The package's own import is light: `Settings` reads `PublishSettings` from here, and the Bitrix24 client, the
store and the rest load when a name below is first used (pipeline/support/lazy.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.support.lazy import lazy_exports

if TYPE_CHECKING:
    from pipeline.publish.bitrix24 import (
        CommentPublisher,
        LedgerEntry,
        PublishOutcome,
        PublishReport,
        PublishStatus,
        ledger_key,
        publish_stored,
    )
    from pipeline.publish.outcomes import WriteOutcome, WriteStatus
    from pipeline.publish.settings import PublishSettings

__all__ = ["CommentPublisher", "LedgerEntry", "PublishOutcome", "PublishReport", "PublishSettings", "PublishStatus",
           "WriteOutcome", "WriteStatus", "ledger_key", "publish_stored"]

__getattr__ = lazy_exports(__name__, {
    **dict.fromkeys(["CommentPublisher", "LedgerEntry", "PublishOutcome", "PublishReport", "PublishStatus",
                     "ledger_key", "publish_stored"], "pipeline.publish.bitrix24"),
    **dict.fromkeys(["WriteOutcome", "WriteStatus"], "pipeline.publish.outcomes"),
    "PublishSettings": "pipeline.publish.settings",
})
