"""Seeded randomness and the identifier shapes AWS uses.

Every random draw in the generator goes through a ``random.Random`` (or a numpy ``Generator``)
seeded from the user's seed plus a label naming the shard or purpose, so a day generated in a
worker process draws exactly what it would draw in the parent: the tree is a pure function of
the arguments. Nothing here reads the clock or the OS entropy pool.
"""

from __future__ import annotations

import hashlib
import random
import string

import numpy as np

_ALNUM = string.ascii_letters + string.digits
_UPPER_ALNUM = string.ascii_uppercase + string.digits
_UUID_VERSION_MASK = ~(0xF << 76)
_UUID_VARIANT_MASK = ~(0xC000 << 48)
_UUID_VERSION_4 = 0x4 << 76
_UUID_VARIANT_RFC = 0x8000 << 48


def derive_seed(seed: int, *labels: object) -> int:
    """A 64-bit seed for one purpose; stable across processes and Python versions."""
    text = "\x1f".join([str(seed), *(str(label) for label in labels)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def rng_for(seed: int, *labels: object) -> random.Random:
    """A ``random.Random`` private to one shard or purpose."""
    return random.Random(derive_seed(seed, *labels))  # noqa: S311 - synthetic data, not crypto


def np_rng_for(seed: int, *labels: object) -> np.random.Generator:
    """A numpy PCG64 generator private to one shard or purpose (for bulk multinomial draws)."""
    return np.random.Generator(np.random.PCG64(derive_seed(seed, *labels)))


def uuid4(rng: random.Random) -> str:
    """A uuid4-shaped string (version and variant bits set) drawn from ``rng``."""
    n = (rng.getrandbits(128) & _UUID_VERSION_MASK & _UUID_VARIANT_MASK) | _UUID_VERSION_4
    h = f"{n | _UUID_VARIANT_RFC:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def alnum(rng: random.Random, length: int) -> str:
    """Mixed-case letters and digits, like the unique part of a CloudTrail file name."""
    return "".join(rng.choices(_ALNUM, k=length))


def upper_alnum(rng: random.Random, length: int) -> str:
    """Upper-case letters and digits, the body of IAM unique ids and access key ids."""
    return "".join(rng.choices(_UPPER_ALNUM, k=length))


def hex_string(rng: random.Random, length: int) -> str:
    """Lower-case hex of the given length."""
    return f"{rng.getrandbits(4 * length):0{length}x}"


def account_id(rng: random.Random) -> str:
    """A 12-digit AWS account id that does not start with 0 (easier to eyeball)."""
    return str(rng.randrange(100_000_000_000, 1_000_000_000_000))


def iam_unique_id(rng: random.Random, prefix: str) -> str:
    """IAM unique ids are 21 characters: ``AROA…`` for roles, ``AIDA…`` for users."""
    return prefix + upper_alnum(rng, 21 - len(prefix))


def access_key_id(rng: random.Random, *, temporary: bool) -> str:
    """Access key ids are 20 characters: ``ASIA…`` for session credentials, ``AKIA…`` long-term."""
    return ("ASIA" if temporary else "AKIA") + upper_alnum(rng, 16)
