"""A small webhook receiver that verifies every delivery before acting on it (standard library HTTP server).

    ALLIANCE_WEBHOOK_SECRET=whsec_... .venv/bin/python partners/examples/webhook_receiver.py --port 8080

Register ``http://<host>:8080/alliance/webhooks`` as an endpoint (``insurer_bundle_leads.py --webhook-url``
does it; in production the URL must be https and public). What it does, in order:

1. read the raw body (verification needs the exact bytes, never re-serialised JSON);
2. ``verify_webhook``: headers present, timestamp within 5 minutes, a ``v1`` signature that matches the
   secret (compared in constant time); otherwise answer 400 and do nothing;
3. skip a ``webhook-id`` already handled (the alliance retries until it gets a 2xx, with the same id);
4. hand the event over and answer 204 at once; slow work belongs in your own queue, since a delivery
   that takes longer than 10 seconds counts as failed and is retried.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import OrderedDict
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock

from _common import DATA  # noqa: F401  (puts the SDK on the path when run from a checkout)

from alliance_partner import WebhookEvent, WebhookVerificationError, verify_webhook

PATH = "/alliance/webhooks"
MAX_BODY = 1024 * 1024
SEEN_IDS = 10_000


class WebhookReceiver:
    """Verification, deduplication and dispatch, apart from any HTTP server (so that it is easy to test)."""

    def __init__(self, secrets: str | list[str], on_event: Callable[[WebhookEvent], None]) -> None:
        self.secrets = secrets
        self.on_event = on_event
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = Lock()

    def handle(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, str]:
        """``(status, text)`` to answer one delivery with."""
        try:
            event = verify_webhook(body, headers, self.secrets)
        except WebhookVerificationError as error:
            return 400, f"rejected: {error}"
        with self._lock:
            if event.id in self._seen:
                return 200, "already handled"
            self._seen[event.id] = None
            if len(self._seen) > SEEN_IDS:
                self._seen.popitem(last=False)
        self.on_event(event)
        return 204, ""


def print_event(event: WebhookEvent) -> None:
    if event.type == "referral.status_changed":
        data = event.data
        print(f"{event.id}: referral {data.get('external_ref')} {data.get('from_status')} -> {data.get('to_status')}")
    else:
        print(f"{event.id}: {event.type} {json.dumps(event.data, ensure_ascii=False)}")
    sys.stdout.flush()


def http_handler(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if self.path != PATH or not 0 < length <= MAX_BODY:
                self.send_error(404 if self.path != PATH else 413)
                return
            status, text = receiver.handle(self.rfile.read(length), dict(self.headers.items()))
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(text.encode())))
            self.end_headers()
            self.wfile.write(text.encode())

        def log_message(self, format: str, *args: object) -> None:  # quieter than the default access log
            pass

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    secrets = [secret for secret in os.environ.get("ALLIANCE_WEBHOOK_SECRET", "").split(",") if secret]
    if not secrets:
        raise SystemExit("set ALLIANCE_WEBHOOK_SECRET to the endpoint's whsec_... secret (comma-separate two)")
    server = ThreadingHTTPServer((args.host, args.port), http_handler(WebhookReceiver(secrets, print_event)))
    print(f"listening on http://{args.host}:{args.port}{PATH}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
