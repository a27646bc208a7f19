"""Process-level tuning shared by the long-running commands (``alliance serve``, ``alliance worker``)."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Move everything alive after start-up (modules, table and schema models, the OpenAPI document) out of the
    cyclic garbage collector's sight: it lives as long as the process, and each full collection would otherwise
    walk all of it again, which showed up as tens of milliseconds on report requests and batch chunks."""
    gc.collect()
    gc.freeze()
