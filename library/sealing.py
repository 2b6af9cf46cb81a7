"""Sealed loan identities (ADR 9): the patron's card, sealed for the loan
queue with PyNaCl's sealed box (X25519 + XSalsa20-Poly1305).

:class:`CardSealer` (the domain's ``Sealer`` port) holds only the public key:
whatever it seals, it cannot open.  :class:`CardUnsealer` holds the private
key, read from a key file outside the database, and is given only to the
loan worker.  Neither logs or keeps a card.
"""

from __future__ import annotations

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from bibbox.locker.domain.identity import CardNumber
from bibbox.library.sip2 import LibraryError

KEY_BYTES = 32


class SealError(LibraryError, ValueError):
    """A sealed identity cannot be opened (another key, or damaged)."""


def private_key(raw: bytes) -> PrivateKey:
    """The loan key from its file's bytes (64 hex digits, or 32 raw bytes)."""
    text = raw.strip()
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        key = text
    if len(key) != KEY_BYTES:
        raise SealError(f"the loan key must be {KEY_BYTES} bytes")
    return PrivateKey(key)


class CardSealer:
    """Seals cards to ``public_key``; cannot open them."""

    def __init__(self, public_key: PublicKey):
        self._box = SealedBox(public_key)

    def seal(self, card: CardNumber) -> bytes:
        return bytes(self._box.encrypt(card.value.encode("utf-8")))


class CardUnsealer:
    """Opens what :class:`CardSealer` sealed to this key's public half."""

    def __init__(self, key: PrivateKey):
        self._box = SealedBox(key)
        self.sealer = CardSealer(key.public_key)

    def unseal(self, sealed: bytes) -> CardNumber:
        try:
            return CardNumber(self._box.decrypt(bytes(sealed)).decode("utf-8"))
        except (CryptoError, UnicodeDecodeError, TypeError):
            raise SealError("a sealed loan identity cannot be opened") from None
