"""The problems of batch uploads beyond the file's own (``files``): a batch closed under a chunk being processed."""

from __future__ import annotations

from app.core.problems import Conflict


class BatchClosed(Conflict):
    slug, title = "batch-closed", "Batch closed"
