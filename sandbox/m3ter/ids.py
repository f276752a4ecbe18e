"""The seeded ids every part of the m3ter emulator shares (generator, catalogue, mappings)."""

from __future__ import annotations

import hashlib
import uuid

NAMESPACE = uuid.UUID("6f1b6a52-3c1e-4c55-9a55-0d4f1e0c2b7a")
_NAMESPACE_BYTES = NAMESPACE.bytes


def stable_id(seed: int, *parts: object) -> str:
    """A UUID that depends only on the seed and the parts: ``uuid5(NAMESPACE, "seed:parts")``,
    written out directly (building ``UUID`` objects was a fifth of the cost of serving bills)."""
    name = ":".join(str(p) for p in (seed, *parts))
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])  # noqa: S324
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def account_id(seed: int, index: int) -> str:
    return stable_id(seed, "account", index)


def integration_config_id(seed: int) -> str:
    """The integration config id that generated mappings are linked to."""
    return stable_id(seed, "integration-config", "xero")
