"""Personal data at rest: AES-256-GCM under rotatable data keys, keyed blind indexes for matching, masking.

A ciphertext carries the id of the key that made it (``version | key id | nonce | ciphertext``), and is bound to
the column it belongs to (associated data), so a value copied to another column does not decrypt.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = 1
_HEADER = struct.Struct(">BI")  # version, key id
_NONCE = 12


class UnknownDataKey(LookupError):
    pass


@dataclass(frozen=True)
class DataCipher:
    """Encrypts with the active key; decrypts with whichever key a ciphertext names."""

    keys: dict[int, AESGCM]
    active_key_id: int

    def encrypt(self, plaintext: str, column: str) -> bytes:
        nonce = os.urandom(_NONCE)
        header = _HEADER.pack(_VERSION, self.active_key_id)
        return header + nonce + self.keys[self.active_key_id].encrypt(nonce, plaintext.encode(), column.encode())

    def decrypt(self, ciphertext: bytes, column: str) -> str:
        version, key_id = _HEADER.unpack_from(ciphertext)
        if version != _VERSION or key_id not in self.keys:
            raise UnknownDataKey(f"no data key {key_id}")
        start = _HEADER.size
        nonce = ciphertext[start : start + _NONCE]
        return self.keys[key_id].decrypt(nonce, ciphertext[start + _NONCE :], column.encode()).decode()

    @staticmethod
    def key_id_of(ciphertext: bytes) -> int:
        return int(_HEADER.unpack_from(ciphertext)[1])


class BlindIndex:
    """HMAC-SHA256 of a normalised identifier under a key of its own (derived from the master key)."""

    def __init__(self, master_key: bytes) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"alliance/blind-index").derive(master_key)
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)  # copied per value: the key is processed once

    def of(self, kind: str, normalised_value: str) -> bytes:
        mac = self._keyed.copy()
        mac.update(f"{kind}:{normalised_value}".encode())
        return mac.digest()


def mask_mobile(mobile: str) -> str:
    return mobile[:3] + "****" + mobile[-4:]


def mask_identifier(value: str) -> str:
    """First 4 and last 4 characters of an ID number or credit code."""
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_name(name: str) -> str:
    return name[0] + "*" * (len(name) - 1) if len(name) > 1 else "*"
