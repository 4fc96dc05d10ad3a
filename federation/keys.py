"""Actor key pairs: generated once, persisted, never regenerated.

An actor's identity on the Fediverse *is* its key: peers cache the public key by ``keyId`` and
Mastodon refuses a changed key for a known actor until its cache expires, so regenerating keys on
restart would silently cut a node off. Keys are therefore written once (mode 0600) and only read after.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

__all__ = ["ActorKey", "PublicKey", "load_or_create_key", "load_public_key_pem", "generate_rsa_key"]

RSA_KEY_BITS = 2048  # what Mastodon and Fedify generate; verifiers accept 2048+
PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class ActorKey:
    """An actor's RSA signing key with its public ``keyId`` (``{actor}#main-key``)."""

    key_id: str
    private_key: rsa.RSAPrivateKey

    @property
    def public_key_pem(self) -> str:
        return (
            self.private_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )


def generate_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)


def load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    """Read the PEM key at ``path``; create it atomically only when the file does not exist yet."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} does not hold an RSA private key")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_rsa_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    temporary = path.with_suffix(path.suffix + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    # os.link fails if another process created the key meanwhile: then theirs wins and we read it.
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink(missing_ok=True)
    return load_or_create_key(path)


def load_public_key_pem(pem: str) -> PublicKey:
    """Parse a peer's ``publicKeyPem`` (SPKI, or the PKCS#1 ``RSA PUBLIC KEY`` some servers emit)."""
    key = serialization.load_pem_public_key(pem.strip().encode("ascii"))
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < RSA_KEY_BITS:
            raise ValueError(f"RSA key of {key.key_size} bits is too weak")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise ValueError(f"unsupported public key type {type(key).__name__}")
