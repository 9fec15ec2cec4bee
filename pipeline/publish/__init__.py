"""Where results go after the store: Bitrix24 (`bitrix24`): the score comment (written as `comment` says), the
transcript on the call (`transcript`), the deal's fields (`deal_fields`), auto-fail notifications (`notify`),
each exactly once (`ledgers`, `once`), as `settings.PublishSettings` switches them."""

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
