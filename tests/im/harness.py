"""An in-process IM service over a MemoryStore, with recording connections (no sockets)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from im import client_pb2 as pb
from im.accounts import Accounts
from im.errors import ImError
from im.features import FeatureOptions
from im.ids import MessageIdGenerator
from im.keys import KeySchema
from im.limits import LoginThrottle
from im.messaging import MessageLimits, Messenger
from im.metrics import ImMetrics
from im.service import ImService, ServiceOptions
from im.sessions import Push, Session, SessionRegistry
from store.crypto import Keyring
from store.memory import MemoryStore


@dataclass
class Clock:
    t: float = 1000.0
    wall_ms: int = 1_800_000_000_000

    def now(self) -> float:
        return self.t

    def now_ms(self) -> int:
        return self.wall_ms + int((self.t - 1000.0) * 1000)


@dataclass(eq=False)
class FakeConnection:
    address: str = "10.9.9.9"
    session: Session | None = None
    pushes: list[pb.ServerFrame] = field(default_factory=list)
    kicked: list[tuple[int, str]] = field(default_factory=list)
    closed: tuple[int, str] | None = None

    @property
    def sink(self) -> FakeConnection:
        return self

    def push(self, push: Push) -> None:
        self.pushes.append(push.frame)

    def kick(self, reason: int, message: str) -> None:
        self.kicked.append((reason, message))
        self.session = None

    def close_after_response(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def is_open(self) -> bool:
        return True

    def messages(self) -> list[pb.Message]:
        return [p.message for p in self.pushes if p.WhichOneof("body") == "message"]

    def of_kind(self, kind: str) -> list[pb.ServerFrame]:
        return [p for p in self.pushes if p.WhichOneof("body") == kind]


class Harness:
    def __init__(
        self,
        *,
        durable: bool = True,
        max_devices: int = 3,
        policy: str = "kick-oldest",
        features: FeatureOptions | None = None,
    ) -> None:
        self.clock = Clock()
        self.store = MemoryStore()
        keys = KeySchema(Keyring(b"k" * 32).blind)
        self.accounts = Accounts(self.store, keys, self.clock.now_ms, 3600.0)
        self.registry = SessionRegistry(max_devices, policy)
        self.metrics = ImMetrics(CollectorRegistry())
        self.messenger = Messenger(
            store=self.store, keys=keys, accounts=self.accounts, registry=self.registry,
            ids=MessageIdGenerator(7), now_ms=self.clock.now_ms, durable=durable, limits=MessageLimits(1000),
            metrics=self.metrics, exclusive_store=True,
        )  # fmt: skip
        self.service = ImService(
            accounts=self.accounts, registry=self.registry, messenger=self.messenger, throttle=LoginThrottle(),
            options=ServiceOptions(node_id="test-node", durable=durable), now=self.clock.now, now_ms=self.clock.now_ms,
            metrics=self.metrics, feature_options=features,
        )  # fmt: skip
        self.features = self.service.features
        self._next = 0

    @classmethod
    async def create(cls, **kwargs: object) -> Harness:
        harness = cls(**kwargs)  # type: ignore[arg-type]
        await harness.store.open()
        return harness

    async def call(self, conn: FakeConnection, **op: object) -> pb.ServerFrame:
        self._next += 1
        frame = pb.ClientFrame(id=self._next, **op)  # type: ignore[arg-type]
        return await self.service.handle(conn, frame)

    async def error(self, conn: FakeConnection, **op: object) -> ImError:
        try:
            await self.call(conn, **op)
        except ImError as exc:
            return exc
        raise AssertionError("expected an ImError")

    async def register(self, user: str, device: str = "d1", password: str = "password-1") -> FakeConnection:
        conn = FakeConnection()
        await self.call(conn, register=pb.Register(user=user, password=password, device=device))
        return conn

    async def login(self, user: str, device: str, password: str = "password-1") -> FakeConnection:
        conn = FakeConnection()
        await self.call(conn, login=pb.Login(user=user, password=password, device=device))
        return conn

    async def send(self, conn: FakeConnection, to: str, text: str, cmid: str = "") -> pb.Sent:
        reply = await self.call(conn, send=pb.Send(to=to, text=text, client_msg_id=cmid))
        return reply.sent
