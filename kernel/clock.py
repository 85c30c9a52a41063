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


_seeded: list[object] = []


def _seeded_id(seed: str) -> str:
    """Deterministic ids for fixtures and snapshot tests (IC_ID_SEED); never used in production."""
    import random

    if not _seeded:
        _seeded.append(random.Random(seed))
    rng = _seeded[0]
    assert isinstance(rng, random.Random)
    return "".join(rng.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def reset_seeded_ids() -> None:
    """Restart the IC_ID_SEED sequence, so a fixture built twice in one process gets the same ids."""
    _seeded.clear()


def new_id() -> str:
    """8 random characters from [a-z0-9], drawn from os.urandom like `secrets` does.

    Rejection sampling keeps the distribution uniform; `secrets` itself is not imported because its
    import chain (random, hashlib, hmac) costs measurable milliseconds on every `ic` call.
    """
    seed = os.environ.get("IC_ID_SEED")
    if seed:
        return _seeded_id(seed)
    out: list[str] = []
    limit = 256 - (256 % len(ID_ALPHABET))
    while len(out) < ID_LENGTH:
        for byte in os.urandom(ID_LENGTH * 2):
            if byte < limit:
                out.append(ID_ALPHABET[byte % len(ID_ALPHABET)])
                if len(out) == ID_LENGTH:
                    break
    return "".join(out)
