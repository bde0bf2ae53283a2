"""Pure signature primitives: PeerId <-> Ed25519 public key, domain-separated verification.

No key material lives here (see :mod:`wwwserve_p2p.identity` for the node's own key); these
functions only check signatures, deterministically, so the ledger fold can use them.

The PeerId is libp2p's: base58btc of the *identity* multihash of the protobuf-encoded
``PublicKey{Type=Ed25519, Data=<32 bytes>}`` (libp2p peer-ids spec), so it embeds the key.
A signature covers ``domain || 0x00 || payload``.
"""

from __future__ import annotations

from functools import lru_cache

import base58
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import MalformedMessage

#: Protobuf prefix of a libp2p PublicKey message for Ed25519: field 1 (Type) = 1, field 2 (Data) len 32.
_PB_ED25519_PREFIX = bytes([0x08, 0x01, 0x12, 0x20])
#: Identity multihash header: code 0x00, length 36.
_MH_IDENTITY_PREFIX = bytes([0x00, 0x24])


def peer_id_from_public_bytes(public: bytes) -> str:
    """PeerId (base58 text) of a raw 32-byte Ed25519 public key.

    :raises MalformedMessage: ``public`` is not 32 bytes.
    """
    if len(public) != 32:
        raise MalformedMessage(f"an Ed25519 public key has 32 bytes, got {len(public)}")
    return base58.b58encode(_MH_IDENTITY_PREFIX + _PB_ED25519_PREFIX + public).decode("ascii")


def public_bytes_from_peer_id(peer_id: str) -> bytes:
    """The raw Ed25519 public key embedded in ``peer_id``.

    :raises MalformedMessage: not base58, or not an identity-multihash Ed25519 PeerId (e.g. an
        RSA PeerId, which is a SHA-256 multihash and does not embed the key).
    """
    try:
        raw = base58.b58decode(peer_id)
    except Exception as exc:  # base58 raises ValueError on bad alphabet
        raise MalformedMessage(f"PeerId is not base58: {peer_id!r}") from exc
    head = _MH_IDENTITY_PREFIX + _PB_ED25519_PREFIX
    if len(raw) != len(head) + 32 or not raw.startswith(head):
        raise MalformedMessage(f"not an Ed25519 PeerId: {peer_id!r}")
    return raw[len(head):]


def message(domain: str, payload: bytes) -> bytes:
    """The bytes actually signed: ``domain || 0x00 || payload``."""
    return domain.encode("utf-8") + b"\x00" + payload


@lru_cache(maxsize=4096)
def _public_key(peer_id: str) -> Ed25519PublicKey | None:
    try:
        return Ed25519PublicKey.from_public_bytes(public_bytes_from_peer_id(peer_id))
    except (MalformedMessage, ValueError):
        return None


def verify(peer_id: str, domain: str, payload: bytes, signature: bytes) -> bool:
    """True iff ``signature`` is ``peer_id``'s Ed25519 signature of ``domain``-separated ``payload``.

    Never raises: a malformed PeerId or signature is simply invalid.
    """
    if not isinstance(peer_id, str):
        return False
    key = _public_key(peer_id)
    if key is None:
        return False
    try:
        key.verify(signature, message(domain, payload))
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False
