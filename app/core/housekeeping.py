"""Process-level tuning shared by the long-running commands (``alliance serve``, ``alliance worker``)."""

from __future__ import annotations

import gc

# Allocations between two young-generation collections (CPython's default is 700). A batch chunk or a report
# allocates hundreds of thousands of short-lived objects that reference counting frees anyway; at the default, the
# collector ran thousands of times per chunk, about 7% of the worker's CPU.
YOUNG_COLLECTION_THRESHOLD = 50_000


def freeze_startup_objects() -> None:
    """Move everything alive after start-up (modules, table and schema models, the OpenAPI document) out of the
    cyclic garbage collector's sight: it lives as long as the process, and each full collection would otherwise
    walk all of it again, which showed up as tens of milliseconds on report requests and batch chunks. Then space
    the young collections out."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)
