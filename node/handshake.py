"""The timnode peer handshake: Noise XX bound to Ed25519 identities and gated by the network key.

Specs: The Noise Protocol Framework rev. 34 (§7.5 ``XX``, §6 prologue) through ``node/noise.py``,
and the libp2p noise spec (libp2p/specs noise/README.md) for the identity binding:

- each side sends a ``NoiseHandshakePayload`` (``proto/peer.proto``): its libp2p
  ``PublicKey`` and an Ed25519 signature over ``"noise-libp2p-static-key:" || s`` where ``s``
  is its Noise static key; the responder in message 2, the initiator in message 3 (both
  encrypted). The receiver derives the PeerId from the key and checks the signature;
- the Noise static key is fresh per handshake (the signature makes it speak for the PeerId).

Network key (timnode's addition; libp2p's pnet would wrap the whole stream instead):

- the prologue is ``"timnode.peer.v1\\0" || network_id(key)``, so a handshake between
  different keys cannot complete: the transcripts differ and message 2 fails to decrypt;
- message 1's payload, which Noise leaves in plaintext (§7.4), is a *confirmation tag*
  ``HMAC-SHA256(key, "timnode netkey confirm v1" || e)`` over the initiator's fresh ephemeral
  key ``e``. The responder checks it before any DH, so it knows *why* it refuses: it sends an
  ``ABORT(NETWORK_KEY_MISMATCH)`` and both sides log "network key mismatch". The tag is bound to
  a fresh ``e``: it neither identifies the network across handshakes nor can be replayed
  under another ephemeral. (It would allow an offline search for a low-entropy key; network keys
  are 256 random bits for that reason.) The libp2p spec asks for an empty first payload; this is
  the one deviation, and it is why a PSK pattern (``XXpsk0``) was not used instead: with a PSK a
  mismatch is only an AEAD failure, indistinguishable from tampering, and the responder would
  learn of it only from a close.

Wire (each item is one transport message, e.g. one WebSocket binary message)::

    0x00 <noise handshake message>         NOISE
    0x01 <code: u8> <utf-8 reason>         ABORT (``node.errors.AbortCode``), then close

Sans-I/O contract (STYLE §3.2): construct with ``now``; after ``receive_data()`` or
``handle_timer()``, send everything from ``data_to_send()`` and then drain ``next_event()`` until
``None``. The events are ``HandshakeComplete`` (carrying the ``SecureChannel``) and
``HandshakeFailed`` (carrying a ``node.errors`` exception). Bad remote input never raises.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
from collections import deque
from dataclasses import dataclass

from google.protobuf.message import DecodeError as ProtobufDecodeError

from node import peer_pb2 as pb
from node.droppable import DatagramChannel
from node.errors import (
    AbortCode,
    AuthenticationError,
    DecodeError,
    DecryptError,
    HandshakeAborted,
    HandshakeError,
    HandshakeTimeout,
    LocalProtocolError,
    NetworkKeyMismatch,
    P2PError,
    PeerIdMismatch,
)
from node.identity import Identity, PeerId, decode_public_key, encode_public_key
from node.netkey import network_id
from node.noise import HandshakeState, KeyPair
from node.secure import ChannelConfig, SecureChannel

__all__ = [
    "ABORT",
    "NOISE",
    "HandshakeComplete",
    "HandshakeEvent",
    "HandshakeFailed",
    "HandshakeProtocol",
    "Phase",
    "confirm_tag",
    "prologue",
]

log = logging.getLogger(__name__)

NOISE = 0x00
ABORT = 0x01
SIG_PREFIX = b"noise-libp2p-static-key:"  # libp2p noise spec
PROLOGUE_PREFIX = b"timnode.peer.v1\0"
MAX_REASON = 200


def prologue(network_key: bytes) -> bytes:
    return PROLOGUE_PREFIX + network_id(network_key)


def confirm_tag(network_key: bytes, ephemeral: bytes) -> bytes:
    """Message 1's payload: proves knowledge of the network key, bound to ``ephemeral``."""
    return hmac.new(network_key, b"timnode netkey confirm v1" + ephemeral, hashlib.sha256).digest()


class Phase(enum.Enum):
    """Where the handshake stands. ``AWAIT_MSG<n>``: waiting for Noise message n."""

    AWAIT_MSG1 = "await-msg1"
    AWAIT_MSG2 = "await-msg2"
    AWAIT_MSG3 = "await-msg3"
    DONE = "done"
    FAILED = "failed"


class HandshakeEvent:
    """Base of handshake events."""

    __slots__ = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeComplete(HandshakeEvent):
    remote_peer: PeerId
    channel: SecureChannel
    handshake_hash: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeFailed(HandshakeEvent):
    error: P2PError
    #: True when the peer told us (an ABORT it sent), False when we detected it.
    remote: bool = False


class HandshakeProtocol:
    """One side of a peer handshake.

    Args:
        initiator: True for the dialling side (it writes message 1 at construction).
        identity: our Ed25519 identity.
        network_key: the 32-byte network key.
        now: the current time, for the deadline.
        expected_peer: the PeerId the dialler expects (``PeerIdMismatch`` otherwise).
        timeout: seconds from ``now`` until ``HandshakeTimeout``.
        channel_config: limits of the resulting ``SecureChannel``.
        static, ephemeral: fixed Noise keys (tests only).
    """

    def __init__(
        self,
        *,
        initiator: bool,
        identity: Identity,
        network_key: bytes,
        now: float,
        expected_peer: PeerId | None = None,
        timeout: float = 10.0,
        channel_config: ChannelConfig | None = None,
        static: KeyPair | None = None,
        ephemeral: KeyPair | None = None,
    ) -> None:
        if expected_peer is not None and not initiator:
            raise LocalProtocolError("only the initiator expects a PeerId")
        self.initiator = initiator
        self._identity = identity
        self._key = network_key
        self._expected = expected_peer
        self._config = channel_config
        self._noise = HandshakeState(
            initiator=initiator,
            prologue=prologue(network_key),
            static=static or KeyPair.generate(),
            ephemeral=ephemeral,
        )
        self._deadline: float | None = now + timeout
        self._out: list[bytes] = []
        self._events: deque[HandshakeEvent] = deque()
        self.remote_peer: PeerId | None = None
        self.phase = Phase.AWAIT_MSG2 if initiator else Phase.AWAIT_MSG1
        if initiator:
            self._noise.e = self._noise.e or KeyPair.generate()
            self._send_noise(confirm_tag(network_key, self._noise.e.public))

    # -- sans-I/O surface -------------------------------------------------------------------

    def data_to_send(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> HandshakeEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        return self._deadline

    def handle_timer(self, now: float) -> None:
        if self._deadline is not None and now >= self._deadline:
            error = HandshakeTimeout(f"handshake timed out in {self.phase.value}")
            self._fail(error, code=AbortCode.TIMEOUT)

    def abort(self, code: AbortCode, reason: str) -> None:
        """Abort locally (for example on shutdown): queue an ABORT and fail."""
        self._fail(HandshakeAborted(reason, code=code), code=code)

    def receive_data(self, data: bytes, now: float) -> None:
        """Process one transport message from the peer."""
        if self.phase in (Phase.DONE, Phase.FAILED):
            log.debug("< %d bytes after the handshake %s: ignored", len(data), self.phase.value)
            return
        if self._deadline is not None and now >= self._deadline:
            self.handle_timer(now)
            return
        if not data:
            self._fail(DecodeError("empty handshake message"), code=AbortCode.PROTOCOL_ERROR)
        elif data[0] == ABORT:
            self._receive_abort(data[1:])
        elif data[0] != NOISE:
            self._fail(DecodeError(f"unknown handshake message kind {data[0]}"), code=AbortCode.PROTOCOL_ERROR)
        else:
            try:
                self._receive_noise(data[1:])
            except HandshakeError as exc:
                self._fail(exc, code=exc.code)
            except (DecodeError, DecryptError) as exc:
                self._fail(HandshakeError(f"{self.phase.value}: {exc}"), code=AbortCode.HANDSHAKE_FAILED)

    # -- internals --------------------------------------------------------------------------

    def _send_noise(self, payload: bytes) -> None:
        self._out.append(bytes([NOISE]) + self._noise.write_message(payload))

    def _receive_noise(self, message: bytes) -> None:
        if self.phase is Phase.AWAIT_MSG1:
            self._receive_msg1(message)
        elif self.phase is Phase.AWAIT_MSG2:
            self._receive_msg2(message)
        else:
            self._receive_msg3(message)

    def _receive_msg1(self, message: bytes) -> None:
        if len(message) != 64:
            raise DecodeError(f"message 1 is {len(message)} bytes, not 64")
        if not hmac.compare_digest(confirm_tag(self._key, message[:32]), message[32:]):
            raise NetworkKeyMismatch("network key mismatch: the initiator holds another network key")
        self._noise.read_message(message)
        self._send_noise(self._signed_payload())
        self.phase = Phase.AWAIT_MSG3

    def _receive_msg2(self, message: bytes) -> None:
        try:
            payload = self._noise.read_message(message)
        except DecryptError as exc:
            raise NetworkKeyMismatch(
                "network key mismatch: cannot decrypt message 2 (the responder holds another "
                "network key, or the message was tampered with)"
            ) from exc
        peer = self._verify_payload(payload)
        if self._expected is not None and peer != self._expected:
            raise PeerIdMismatch(
                f"peer id mismatch: dialled {self._expected}, the peer proved {peer}",
                expected=str(self._expected),
                actual=str(peer),
            )
        self._send_noise(self._signed_payload())
        self._complete(peer)

    def _receive_msg3(self, message: bytes) -> None:
        payload = self._noise.read_message(message)
        self._complete(self._verify_payload(payload))

    def _signed_payload(self) -> bytes:
        payload = pb.NoiseHandshakePayload(
            identity_key=encode_public_key(self._identity.public_bytes),
            identity_sig=self._identity.sign(SIG_PREFIX + self._noise.s.public),
        )
        return payload.SerializeToString()

    def _verify_payload(self, data: bytes) -> PeerId:
        try:
            payload = pb.NoiseHandshakePayload.FromString(data)
        except ProtobufDecodeError as exc:
            raise AuthenticationError("handshake payload is not a NoiseHandshakePayload") from exc
        try:
            peer = PeerId.from_public_key(decode_public_key(payload.identity_key))
        except DecodeError as exc:
            raise AuthenticationError(f"handshake identity key: {exc}") from exc
        assert self._noise.rs is not None
        if not peer.verify(payload.identity_sig, SIG_PREFIX + self._noise.rs):
            raise AuthenticationError(f"handshake signature of {peer} does not verify")
        return peer

    def _complete(self, peer: PeerId) -> None:
        send, receive = self._noise.split()
        self.remote_peer = peer
        self.phase = Phase.DONE
        self._deadline = None
        datagram = DatagramChannel.from_chaining_key(self._noise.symmetric.ck, initiator=self.initiator)
        channel = SecureChannel(send, receive, self._config, datagram)
        self._events.append(
            HandshakeComplete(remote_peer=peer, channel=channel, handshake_hash=self._noise.handshake_hash)
        )

    def _receive_abort(self, body: bytes) -> None:
        code_value = body[0] if body else AbortCode.HANDSHAKE_FAILED
        reason = body[1 : 1 + MAX_REASON].decode("utf-8", "replace") or "no reason given"
        try:
            code = AbortCode(code_value)
        except ValueError:
            code = AbortCode.HANDSHAKE_FAILED
        error: HandshakeError
        if code is AbortCode.NETWORK_KEY_MISMATCH:
            error = NetworkKeyMismatch(f"network key mismatch (reported by the peer: {reason})")
        else:
            error = HandshakeAborted(f"peer aborted the handshake: {code.name}: {reason}", code=code)
        self._fail(error, remote=True)

    def _fail(self, error: P2PError, *, code: AbortCode | None = None, remote: bool = False) -> None:
        if self.phase in (Phase.DONE, Phase.FAILED):
            return
        if code is not None and not remote:
            reason = str(error).encode()[:MAX_REASON]
            self._out.append(bytes([ABORT, code]) + reason)
        self.phase = Phase.FAILED
        self._deadline = None
        self._events.append(HandshakeFailed(error=error, remote=remote))
