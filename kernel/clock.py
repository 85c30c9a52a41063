"""Time and identifiers: the two sources of non-determinism, kept in one place so tests can pin them."""

from __future__ import annotations

import os
import time

ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
ID_LENGTH = 8


def now() -> int:
    """Unix seconds; every kernel timestamp comes from here."""
    override = os.environ.get("IC_NOW")
    if override:
        return int(override)
    return int(time.time())


def new_id() -> str:
    """8 random characters from [a-z0-9], drawn from os.urandom like `secrets` does.

    Rejection sampling keeps the distribution uniform; `secrets` itself is not imported because its
    import chain (random, hashlib, hmac) costs measurable milliseconds on every `ic` call.
    """
    out: list[str] = []
    limit = 256 - (256 % len(ID_ALPHABET))
    while len(out) < ID_LENGTH:
        for byte in os.urandom(ID_LENGTH * 2):
            if byte < limit:
                out.append(ID_ALPHABET[byte % len(ID_ALPHABET)])
                if len(out) == ID_LENGTH:
                    break
    return "".join(out)
