"""Authlib's httpx clients, imported once.

Authlib 1.9 announces, on import, that it will move from httpx to its ``httpx2`` fork; the SDK is pinned to
Authlib < 1.10 and httpx, so the notice says nothing actionable to a partner and is silenced here only.
"""

from __future__ import annotations

import warnings

from authlib.deprecate import AuthlibDeprecationWarning

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="The httpx module is deprecated", category=AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuth2Client

__all__ = ["AsyncOAuth2Client", "OAuth2Client"]
