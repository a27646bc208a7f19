"""What the examples share: where the alliance runs and which credentials to use.

Credentials, the first found wins:

1. ``ALLIANCE_CLIENT_ID`` with ``ALLIANCE_CLIENT_SECRET`` (or ``ALLIANCE_PRIVATE_KEY_FILE``), as in production;
2. ``--credentials FILE`` (or ``ALLIANCE_DEMO_CREDENTIALS=FILE``): the JSON that ``alliance demo --json
   --reset-secrets`` prints, from which each example takes its demo partner's client (``cli_demo_bank``...).

``--base-url`` (or ``ALLIANCE_BASE_URL``) defaults to ``make run``'s http://localhost:8000.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"

try:
    import alliance_partner  # noqa: F401
except ImportError:  # running from a checkout without the SDK installed: use the one beside the examples
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def connection_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--base-url", default=os.environ.get("ALLIANCE_BASE_URL", "http://localhost:8000"))
    parser.add_argument(
        "--credentials",
        type=Path,
        default=os.environ.get("ALLIANCE_DEMO_CREDENTIALS"),
        help="the output of `alliance demo --json --reset-secrets`",
    )
    return parser


def client_options(args: argparse.Namespace, demo_client_id: str) -> dict[str, Any]:
    """Options for ``Client.from_env`` / ``AsyncClient.from_env`` (which read the ``ALLIANCE_*`` variables)."""
    if os.environ.get("ALLIANCE_CLIENT_ID") and (
        os.environ.get("ALLIANCE_CLIENT_SECRET") or os.environ.get("ALLIANCE_PRIVATE_KEY_FILE")
    ):
        return {"base_url": args.base_url}
    if args.credentials is None:
        raise SystemExit(
            "No credentials: set ALLIANCE_CLIENT_ID and ALLIANCE_CLIENT_SECRET, or pass --credentials FILE with "
            "the output of `alliance demo --json --reset-secrets`."
        )
    demo = {item["client_id"]: item for item in json.loads(Path(args.credentials).read_text())}
    found = demo.get(demo_client_id)
    if not found or not found.get("client_secret"):
        raise SystemExit(
            f"{args.credentials} holds no secret for {demo_client_id}; rerun `alliance demo --json --reset-secrets`."
        )
    return {"base_url": args.base_url, "client_id": demo_client_id, "client_secret": found["client_secret"]}
