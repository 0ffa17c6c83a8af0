"""RS256 signing keys: generation, loading, key ids, JWKS, and signing.

Layout on disk (paths from settings):
    LICENSE_PRIVATE_KEY_PATH       current signing key (0600)
    LICENSE_PUBLIC_KEY_PATH        its public half (the guide's public-key.pem)
    <public key dir>/previous/*.pem  public halves of rotated-out keys that still verify

The key id (`kid`) is the RFC 7638 JWK thumbprint of the public key, so it is derived
from the key itself and needs no registry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings

from core.errors import ApplicationError
from licensing.verify import public_jwk


class SigningKeyMissing(ApplicationError):
    """The private key is not where settings say: a deployment fault, answered with 503."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error="License signing unavailable", status_code=503)


def write_key_pair(private_path: Path, public_path: Path, *, bits: int = 2048) -> str:
    """Write a new key pair (private key 0600); return its kid."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.chmod(private_path, 0o600)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    _load_private.cache_clear()
    return public_jwk(key.public_key())["kid"]


def previous_keys_dir() -> Path:
    return Path(settings.LICENSE_PUBLIC_KEY_PATH).parent / "previous"


@dataclass(frozen=True)
class SigningKey:
    private_key: rsa.RSAPrivateKey
    kid: str


@lru_cache(maxsize=4)
def _load_private(path: str, mtime_ns: int) -> SigningKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SigningKeyMissing(f"{path} is not an RSA private key")
    return SigningKey(private_key=key, kid=public_jwk(key.public_key())["kid"])


def signing_key() -> SigningKey:
    """The current key; re-read only when the file changes (rotation needs no restart)."""
    path = Path(settings.LICENSE_PRIVATE_KEY_PATH)
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise SigningKeyMissing(
            f"License private key {path} not found; run `python manage.py generate_keys`."
        ) from None
    return _load_private(str(path), mtime)


def current_public_pem() -> str:
    key = signing_key().private_key.public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def verification_keys() -> list[dict]:
    """JWKs of every key that still verifies: the current one, then rotated-out ones."""
    keys = [public_jwk(signing_key().private_key.public_key())]
    directory = previous_keys_dir()
    if directory.is_dir():
        for pem_path in sorted(directory.glob("*.pem")):
            public_key = serialization.load_pem_public_key(pem_path.read_bytes())
            if isinstance(public_key, rsa.RSAPublicKey):
                jwk = public_jwk(public_key)
                if all(k["kid"] != jwk["kid"] for k in keys):
                    keys.append(jwk)
    return keys


def rotate() -> tuple[str, str]:
    """Archive the current public key as still-valid, then write a new pair; (old, new) kid."""
    old = signing_key()
    directory = previous_keys_dir()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{old.kid}.pem").write_text(current_public_pem())
    new_kid = write_key_pair(
        Path(settings.LICENSE_PRIVATE_KEY_PATH), Path(settings.LICENSE_PUBLIC_KEY_PATH)
    )
    return old.kid, new_kid


def retire(kid: str) -> bool:
    """Stop publishing a rotated-out key; licenses signed with it stop verifying."""
    path = previous_keys_dir() / f"{kid}.pem"
    if path.is_file():
        path.unlink()
        return True
    return False


def sign(claims: dict, *, typ: str) -> str:
    key = signing_key()
    return jwt.encode(
        claims, key.private_key, algorithm="RS256", headers={"kid": key.kid, "typ": typ}
    )
