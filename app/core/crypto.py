"""Sealing secrets with the master key (AES-256-GCM), for key material the service stores in its database."""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_NONCE_BYTES = 12


class MasterKeyError(ValueError):
    pass


def decode_master_key(value: str) -> bytes:
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MasterKeyError("the master key must be base64") from exc
    if len(key) != 32:
        raise MasterKeyError("the master key must be 32 bytes (base64 of `openssl rand 32`)")
    return key


class SealedBox:
    """AES-GCM under a key derived from the master key for one ``purpose``; ``purpose`` is also bound as AAD."""

    def __init__(self, master_key: bytes, purpose: str) -> None:
        self._purpose = purpose.encode()
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"alliance/" + self._purpose).derive(
            master_key
        )
        self._aead = AESGCM(derived)

    def seal(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, self._purpose)

    def open(self, sealed: bytes) -> bytes:
        return self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], self._purpose)
