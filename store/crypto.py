"""Encryption at rest for token sets and PKCE verifiers (Fernet: AES-128-CBC + HMAC)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from config.errors import InvalidInput
from config.settings import Settings

KEY_FILE = "encryption.key"


class Cipher:
    """Encrypts and decrypts small JSON documents; the key never leaves this object."""

    def __init__(self, key: str | bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(
                "is not a valid Fernet key (32 url-safe base64-encoded bytes)",
                field="BILLSYNC_ENCRYPTION_KEY",
            ) from exc
        raw = key.encode() if isinstance(key, str) else bytes(key)
        # A key of its own for signatures, derived from the Fernet key (never the same bytes).
        self._mac_key = hmac.new(raw, b"billsync signatures v1", hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "Cipher(<key hidden>)"

    def sign(self, data: bytes) -> bytes:
        """An HMAC-SHA256 tag of ``data``: what this project issued, others cannot forge."""
        return hmac.new(self._mac_key, data, hashlib.sha256).digest()

    def verify(self, data: bytes, tag: bytes) -> bool:
        """Whether ``tag`` is (the start of, 16 bytes at least) this key's tag of ``data``."""
        return len(tag) >= 16 and hmac.compare_digest(self.sign(data)[: len(tag)], tag)

    def encrypt_json(self, value: Any) -> str:
        """``value`` as JSON, encrypted."""
        return self._fernet.encrypt(json.dumps(value).encode()).decode()

    def decrypt_json(self, token: str) -> Any:
        """The JSON value ``encrypt_json`` made."""
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise InvalidInput(
                "cannot decrypt stored secrets: the encryption key changed",
                field="BILLSYNC_ENCRYPTION_KEY",
            ) from exc

    def encrypt_text(self, value: str) -> str:
        """``text``, encrypted."""
        return self.encrypt_json(value)

    def decrypt_text(self, token: str) -> str:
        """The text ``encrypt_text`` made."""
        return str(self.decrypt_json(token))


def cipher_from_settings(settings: Settings, *, create_if_missing: bool = False) -> Cipher:
    """The configured key; the demo may create one in its data folder, nothing else does."""
    if settings.encryption_key is not None:
        return Cipher(settings.encryption_key.get_secret_value())
    key_path = settings.data_dir / KEY_FILE
    if key_path.exists():
        return Cipher(key_path.read_text().strip())
    if create_if_missing:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key().decode()
        key_path.write_text(key)
        key_path.chmod(0o600)
        return Cipher(key)
    raise InvalidInput(
        "is not set: generate one with `python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())'` and put it in the environment or .env",
        field="BILLSYNC_ENCRYPTION_KEY",
    )
