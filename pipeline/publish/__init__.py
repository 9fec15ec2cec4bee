"""Where results go after the store: score comments in Bitrix24 deals (`bitrix24`), written as `comment` says."""

from pipeline.publish.bitrix24 import (
    CommentPublisher,
    LedgerEntry,
    PublishOutcome,
    PublishReport,
    PublishStatus,
    ledger_key,
    publish_stored,
)

__all__ = ["CommentPublisher", "LedgerEntry", "PublishOutcome", "PublishReport", "PublishStatus", "ledger_key",
           "publish_stored"]
