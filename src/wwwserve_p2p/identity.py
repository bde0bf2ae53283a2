"""Node identity: a persistent Ed25519 key pair and the libp2p PeerId derived from it.

The PeerId is the libp2p one: base58btc of the *identity* multihash of the protobuf-encoded
``PublicKey{Type=Ed25519, Data=<32 bytes>}`` (libp2p peer-ids spec), so it embeds the public
key and any signature can be checked from the PeerId alone. The same key is used by the
libp2p host (transport security, gossip signing) and by the ledger and votes, with
domain-separated messages: ``sign(domain, payload)`` signs ``domain || 0x00 || payload``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .core.crypto import message as _message
from .core.crypto import peer_id_from_public_bytes, public_bytes_from_peer_id, verify
from .errors import ConfigError

__all__ = ["KEY_FILE_NAME", "Identity", "peer_id_from_public_bytes", "public_bytes_from_peer_id", "verify"]

KEY_FILE_NAME = "identity.key"


@dataclass(frozen=True)
class Identity:
    """An Ed25519 key pair. ``private_bytes`` is the 32-byte seed; keep it secret."""

    private_bytes: bytes

    def __post_init__(self) -> None:
        if len(self.private_bytes) != 32:
            raise ConfigError("an Ed25519 private key seed has 32 bytes")

    @classmethod
    def generate(cls) -> "Identity":
        """A fresh random identity (uses the OS CSPRNG)."""
        key = Ed25519PrivateKey.generate()
        return cls(key.private_bytes_raw())

    @classmethod
    def load_or_create(cls, data_dir: str | os.PathLike[str]) -> "Identity":
        """Load ``<data_dir>/identity.key``, creating it (mode 0600) on first use.

        :raises ConfigError: the file exists but is not a valid key, or is readable by others.
        """
        path = Path(data_dir) / KEY_FILE_NAME
        if path.exists():
            return cls.load(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        ident = cls.generate()
        ident.save(path)
        return ident

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Identity":
        """Load a key file written by :meth:`save` (raw 32 bytes, or hex text).

        :raises ConfigError: unreadable, wrong size, or group/other-readable permissions.
        """
        p = Path(path)
        try:
            mode = p.stat().st_mode & 0o077
            data = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read identity key {p}: {exc}") from exc
        if mode:
            raise ConfigError(f"identity key {p} is accessible by others (mode {oct(p.stat().st_mode & 0o777)}); run chmod 600")
        text = data.strip()
        try:
            raw = bytes.fromhex(text.decode("ascii")) if len(text) == 64 else data
        except ValueError as exc:
            raise ConfigError(f"identity key {p} is not valid hex") from exc
        if len(raw) != 32:
            raise ConfigError(f"identity key {p} must hold 32 bytes (or 64 hex chars), got {len(raw)}")
        return cls(raw)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the key as 64 hex characters to ``path`` with mode 0600 (atomically)."""
        p = Path(path)
        tmp = p.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, self.private_bytes.hex().encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, p)

    @property
    def _key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.private_bytes)

    @property
    def public_bytes(self) -> bytes:
        """The 32-byte raw public key."""
        return self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def peer_id(self) -> str:
        """The libp2p PeerId (base58, starts with ``12D3KooW``)."""
        return peer_id_from_public_bytes(self.public_bytes)

    def sign(self, domain: str, payload: bytes) -> bytes:
        """Ed25519 signature (64 bytes) of ``domain || 0x00 || payload``."""
        return self._key.sign(_message(domain, payload))
