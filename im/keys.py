"""The IM layer's key layout in the record store.

User names, conversation pairs, devices and client message ids appear in keys only as
keyed hashes (``blind``, from the store's keyring), so a database operator sees neither
names nor content; message ids are big-endian so that key order is id order.

    A | blind(user)                          -> records.Account
    T | sha256(token)                        -> records.Token
    I | blind(user) | id                     -> client.Message   (the user's inbox: sync)
    C | blind(pair) | id                     -> client.Message   (one conversation: history)
    D | blind(user) | blind(client_msg_id)   -> records.SendResult (idempotent sends)
    K | blind(user) | blind(device)          -> records.Cursor   (a device's delivery ack)
    R | blind(user) | blind(peer)            -> records.Relation (friendship, request, block: im/roster.py)
    M | blind(user) | blind(conversation)    -> records.ReadMarker (read up to here: im/receipts.py)
    S | blind(user)                          -> records.PresenceSetting (chosen presence: im/presence.py)
    P | blind(user)                          -> client.Profile   (im/profiles.py)
    H | blind(group)                         -> records.Group    (a group's info and settings: im/groups.py)
    N | blind(group) | blind(user)           -> records.GroupMembership (member, applicant, banned, former)
    U | blind(user) | blind(group)           -> records.UserGroup (the user's groups: "my groups")
    G | blind(group) | seq                   -> client.Message   (the group log, stored once: read diffusion)

Relations are scanned per user (``relations_range``): the peer's name is in the sealed
value, never in the key.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable

from store.api import prefix_end

__all__ = ["Blind", "KeySchema", "pack_id", "unpack_id"]

Blind = Callable[[bytes, bytes], bytes]

_ID = struct.Struct(">Q")


def pack_id(message_id: int) -> bytes:
    return _ID.pack(message_id)


def unpack_id(raw: bytes) -> int:
    return int(_ID.unpack(raw[-8:])[0])


class KeySchema:
    """Builds store keys; ``blind(label, value)`` is the store keyring's keyed hash."""

    def __init__(self, blind: Blind) -> None:
        self._blind = blind
        self._user_cache: dict[str, bytes] = {}
        self._pair_cache: dict[tuple[str, str], bytes] = {}

    def user(self, user: str) -> bytes:
        hashed = self._user_cache.get(user)
        if hashed is None:
            if len(self._user_cache) > 100_000:
                self._user_cache.clear()
            hashed = self._user_cache[user] = self._blind(b"user", user.encode())
        return hashed

    def account(self, user: str) -> bytes:
        return b"A" + self._blind(b"account", user.encode())

    @staticmethod
    def token(token: str) -> bytes:
        return b"T" + hashlib.sha256(token.encode()).digest()

    def inbox(self, user: str, message_id: int) -> bytes:
        return b"I" + self.user(user) + pack_id(message_id)

    def inbox_range(self, user: str, after: int) -> tuple[bytes, bytes]:
        prefix = b"I" + self.user(user)
        return prefix + pack_id(after + 1) if after < 2**64 - 1 else prefix_end(prefix), prefix_end(prefix)

    def conversation_prefix(self, a: str, b: str) -> bytes:
        pair = (a, b) if a <= b else (b, a)
        prefix = self._pair_cache.get(pair)
        if prefix is None:
            if len(self._pair_cache) > 100_000:
                self._pair_cache.clear()
            blinded = self._blind(b"pair", pair[0].encode() + b"\x00" + pair[1].encode())
            prefix = self._pair_cache[pair] = b"C" + blinded
        return prefix

    def conversation(self, a: str, b: str, message_id: int) -> bytes:
        return self.conversation_prefix(a, b) + pack_id(message_id)

    def history_range(self, a: str, b: str, before: int) -> tuple[bytes, bytes]:
        prefix = self.conversation_prefix(a, b)
        return prefix, (prefix + pack_id(before)) if before else prefix_end(prefix)

    def send_result(self, user: str, client_msg_id: str) -> bytes:
        return b"D" + self.user(user) + self._blind(b"cmid", client_msg_id.encode())

    def cursor(self, user: str, device: str) -> bytes:
        return b"K" + self.user(user) + self._blind(b"device", device.encode())

    def relation(self, user: str, peer: str) -> bytes:
        return b"R" + self.user(user) + self._blind(b"peer", peer.encode())

    def relations_range(self, user: str) -> tuple[bytes, bytes]:
        prefix = b"R" + self.user(user)
        return prefix, prefix_end(prefix)

    def read_marker(self, user: str, conversation: str) -> bytes:
        return b"M" + self.user(user) + self._blind(b"conv", conversation.encode())

    def read_markers_range(self, user: str) -> tuple[bytes, bytes]:
        prefix = b"M" + self.user(user)
        return prefix, prefix_end(prefix)

    def presence_setting(self, user: str) -> bytes:
        return b"S" + self.user(user)

    def profile(self, user: str) -> bytes:
        return b"P" + self.user(user)

    # ---------------------------------------------------------------- groups (im/groups.py)

    def group(self, group: str) -> bytes:
        return b"H" + self._blind(b"group", group.encode())

    def _group_part(self, group: str) -> bytes:
        return self._blind(b"group", group.encode())

    def membership(self, group: str, user: str) -> bytes:
        return b"N" + self._group_part(group) + self.user(user)

    def memberships_range(self, group: str) -> tuple[bytes, bytes]:
        prefix = b"N" + self._group_part(group)
        return prefix, prefix_end(prefix)

    def user_group(self, user: str, group: str) -> bytes:
        return b"U" + self.user(user) + self._group_part(group)

    def user_groups_range(self, user: str) -> tuple[bytes, bytes]:
        prefix = b"U" + self.user(user)
        return prefix, prefix_end(prefix)

    def group_message(self, group: str, seq: int) -> bytes:
        return b"G" + self._group_part(group) + pack_id(seq)

    def group_log_range(self, group: str, after_seq: int, up_to: int) -> tuple[bytes, bytes]:
        """Keys of seq in (after_seq, up_to]."""
        prefix = b"G" + self._group_part(group)
        return prefix + pack_id(after_seq + 1), prefix + pack_id(up_to + 1) if up_to < 2**64 - 1 else prefix_end(prefix)

    def group_log_prefix(self, group: str) -> bytes:
        return b"G" + self._group_part(group)
