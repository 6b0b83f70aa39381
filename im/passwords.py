"""Password hashing with Argon2id (RFC 9106), the memory-hard KDF.

Parameters follow RFC 9106 §4's second recommended option scaled to an interactive
login (OWASP: m = 19 MiB, t = 2, p = 1; ~50 ms here). Hashes are self-describing
(``argon2id$m=19456,t=2,p=1$<salt>$<hash>``) so parameters can rise later while old
hashes still verify. The KDF releases the GIL: callers run it in a thread.
"""

from __future__ import annotations

import base64
import hmac
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

__all__ = ["Argon2Params", "hash_password", "verify_password", "DEFAULT_PARAMS"]


@dataclass(frozen=True, slots=True)
class Argon2Params:
    memory_kib: int = 19 * 1024
    iterations: int = 2
    lanes: int = 1


DEFAULT_PARAMS = Argon2Params()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, params: Argon2Params) -> bytes:
    kdf = Argon2id(
        salt=salt, length=32, iterations=params.iterations, lanes=params.lanes, memory_cost=params.memory_kib
    )
    return kdf.derive(password.encode())


def hash_password(password: str, params: Argon2Params = DEFAULT_PARAMS) -> str:
    salt = os.urandom(16)
    digest = _derive(password, salt, params)
    spec = f"m={params.memory_kib},t={params.iterations},p={params.lanes}"
    return f"argon2id${spec}${_b64(salt)}${_b64(digest)}"


def _parse(encoded: str) -> tuple[Argon2Params, bytes, bytes]:
    scheme, spec, salt, digest = encoded.split("$")
    if scheme != "argon2id":
        raise ValueError("unknown password hash scheme")
    fields = dict(part.split("=", 1) for part in spec.split(","))
    params = Argon2Params(int(fields["m"]), int(fields["t"]), int(fields["p"]))
    return params, _unb64(salt), _unb64(digest)


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches ``encoded``; False for a wrong password or a bad hash."""
    try:
        params, salt, digest = _parse(encoded)
    except (ValueError, KeyError):
        return False
    return hmac.compare_digest(_derive(password, salt, params), digest)
