"""PeerManager: the network service of a node.

It listens and dials through a :class:`~tfnode.net.abc.Transport`, runs the handshake, and
keeps one :class:`PeerConnection` per peer, each with a reader task and a writer task.

Policies (defaults in :class:`NetConfig`, reasons in docs/network.md):

* **Routing.** Messages are routed to handlers registered per (chain id, kind). A peer may
  only send on chains it is admitted on: those of its Hello (or its latest CHAINS control
  message) that this node serves and lists it a member of. A frame for a chain this node
  does not serve (for example one it has just left) is dropped and counted
  (``dropped_unknown_chain``); a frame for a served chain the peer is not a member of is a
  protocol violation (ban).
* **Chains at runtime.** :meth:`PeerManager.set_members` changes the chains this node serves
  without touching open links: each link's admitted chains are recomputed and every peer is
  told with a CHAINS control message, so it recomputes its side the same way.
* **Per-chain inboxes.** With more than one chain served, each (peer, chain) pair has its own
  bounded inbox (``chain_queue_limit`` messages, ``chain_queue_bytes`` bytes) and worker
  task: a chain whose handler is slow or stuck fills only its own inbox (then its gossip,
  and at last its own newest messages, are dropped and counted as ``chain_queue_dropped``;
  consensus and sync recover them), and never delays another chain's messages from the same
  peer. A node serving one chain runs handlers inline in the reader, as before.
* **Send queues.** One bounded queue per (peer, chain) (``send_queue_limit`` messages each)
  and a small one for link control; the writer takes from the chains' queues in turn, so a
  chain that floods a peer delays only its own messages, never another chain's consensus.
  When a chain's queue is full, a gossip message (kind with the high bit set) evicts that
  chain's oldest queued gossip message, or is dropped itself; a must-deliver message evicts
  the chain's oldest gossip, and if there is none the peer is too slow to follow that chain:
  with one chain served the link is closed (it reconnects and catches up through sync, which
  is cheaper than unbounded memory); with several, the message is dropped and counted
  (``chain_send_dropped``: consensus timeouts and sync recover it), since closing the link
  would disturb the other chains.
* **Rate limit.** A token bucket on bytes and one on messages per PeerId (they survive
  reconnects). A peer above its rate is not punished, only read more slowly: TCP pushes
  back on that one peer, the others are unaffected.
* **Bans.** Bytes that do not decode after authentication (or a handler raising
  InvalidMessage) ban the PeerId for ``ban_duration``; garbage before authentication bans the
  remote host address. A failed tag or an oversized header on the encrypted link only closes
  it: those bytes are unauthenticated, and banning on them would let anyone on the path get
  honest members banned.
* **Duplicates.** Of two connections between the same pair, the one dialed by the lower
  PeerId is kept (both ends decide alike); in the same direction the newer one wins. The
  loser is *retired*, not cut: its queue moves to the winner, a GOODBYE is its last frame,
  and it is read until the peer's GOODBYE arrives (or ``retire_timeout``), so messages the
  peer wrote on it before it learned of the switch are not lost.
* **Reconnect.** Each peer added with :meth:`PeerManager.add_peer` has a dial loop with
  exponential back-off and jitter.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import random
import time
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tfnode import crypto
from tfnode.net.abc import ByteStream, ChainId, Listener, MessageHandler, PeerId, Transport, short_id
from tfnode.net.errors import (
    AuthenticationError,
    ConnectionClosed,
    HandshakeError,
    HandshakeRefused,
    MalformedMessage,
    NetworkError,
    NonceExhausted,
    RefuseReason,
)
from tfnode.net.framing import DEFAULT_MAX_FRAME_SIZE
from tfnode.net.handshake import MAX_CHAINS, PROTOCOL_VERSION, HandshakeConfig, Session, handshake
from tfnode.net.limits import Backoff, BanList, Clock, TokenBucket
from tfnode.net.protocol import (
    Kind,
    decode_chain_list,
    decode_envelope,
    encode_chain_list,
    encode_envelope,
    is_control,
    is_gossip,
)
from tfnode.net.secure import COUNTER_LIMIT, DEFAULT_REKEY_INTERVAL, SecureLink

log = logging.getLogger(__name__)

#: Seconds a link must have been silent before a link from another process under the same
#: key replaces it (a peer that restarted while its old socket stayed half-open); a link
#: heard from more recently means two live nodes share one key, and the newcomer is refused.
DUPLICATE_QUIET = 5.0


@dataclass
class NetConfig:
    listen: Any = None  # address to listen on ((host, port) for TCP), or None
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    handshake_timeout: float = 10.0
    send_queue_limit: int = 4096  # messages per peer
    rate_bytes: float = 64 * 1024 * 1024  # bytes/s per peer, inbound
    burst_bytes: float = 2 * DEFAULT_MAX_FRAME_SIZE + 1024
    rate_messages: float = 20_000.0  # messages/s per peer, inbound
    burst_messages: float = 40_000.0
    ban_duration: float = 600.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    backoff_jitter: float = 0.5
    ping_interval: float = 10.0
    idle_timeout: float = 30.0  # no frame from the peer for this long: close
    rekey_interval: int = DEFAULT_REKEY_INTERVAL
    max_frames: int = COUNTER_LIMIT
    max_pending_handshakes: int = 64  # inbound connections not yet authenticated
    retire_timeout: float = 5.0  # how long a retired duplicate is read for the peer's GOODBYE
    # Per (peer, chain) inbox when several chains are served (see "Per-chain inboxes").
    chain_queue_limit: int = 1024  # messages
    chain_queue_bytes: int = 32 * 1024 * 1024
    protocol_version: int = PROTOCOL_VERSION  # what our Hello says (tests of mixed versions set it)


def _address_key(address: Any) -> Hashable:
    """What a pre-authentication ban applies to: the host of a (host, port) address."""
    if isinstance(address, tuple) and address:
        return address[0]
    return address


class _Inbox:
    """The bounded queue of one (peer, chain) pair and the wake-up of its worker task."""

    __slots__ = ("queue", "size", "wake")

    def __init__(self) -> None:
        self.queue: collections.deque[tuple[int, bytes]] = collections.deque()
        self.size = 0  # payload bytes queued
        self.wake = asyncio.Event()


class PeerConnection:
    """One authenticated link to a peer and its outbound queue."""

    def __init__(self, link: SecureLink, session: Session, dialer: bytes, address: Any) -> None:
        self.link = link
        self.session = session
        self.peer_id = session.peer_id
        self.dialer = dialer  # PeerId of the side that dialed this connection
        self.address = address
        # Outbound: link control (pings, CHAINS, GOODBYE), then one queue per chain, taken in
        # turn by the writer (see "Send queues"); ``queued`` counts what all of them hold.
        self.control: collections.deque[bytes] = collections.deque()
        self.queues: dict[ChainId, collections.deque[tuple[bool, bytes]]] = {}
        self.queued = 0
        self.wake = asyncio.Event()
        self.closed = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.retiring = False
        # The chains the peer says it serves, and those of them it is admitted on here; both
        # change at runtime (CHAINS messages, PeerManager.set_members).
        self.peer_chains: set[ChainId] = set(session.peer_chains or session.chains)
        self.chains: set[ChainId] = set(session.chains)
        self.inboxes: dict[ChainId, _Inbox] = {}
        self.last_heard = 0.0  # clock time of the last frame read (0: none yet)

    def __repr__(self) -> str:
        return f"PeerConnection({short_id(self.peer_id)}, dialer={short_id(self.dialer)})"


class PeerManager:
    """Listens, dials, authenticates and routes messages for one node.

    ``members`` maps each chain id this node serves to the PeerIds (33-byte compressed SM2
    static public keys) of that chain's consortium members.
    """

    def __init__(
        self,
        identity: crypto.PrivateKey,
        members: Mapping[ChainId, Collection[bytes]],
        transport: Transport,
        config: NetConfig | None = None,
        *,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or NetConfig()
        self.transport = transport
        self._clock = clock
        self._bans = BanList(clock)
        self._hs = HandshakeConfig(
            identity,
            members,
            version=self.config.protocol_version,
            timeout=self.config.handshake_timeout,
            is_banned=self._bans.is_banned,
        )
        self.peer_id: PeerId = self._hs.peer_id
        self._backoff = Backoff(self.config.backoff_base, self.config.backoff_cap, self.config.backoff_jitter, rng)
        self._conns: dict[bytes, PeerConnection] = {}  # keyed by PeerId (plain bytes on the hot paths)
        self._retiring: set[PeerConnection] = set()
        self._streams: set[ByteStream] = set()  # every open stream, so close() can release them
        self._handlers: dict[tuple[ChainId, int], MessageHandler] = {}
        self._dialers: dict[bytes, asyncio.Task[None]] = {}
        self._buckets: dict[bytes, tuple[TokenBucket, TokenBucket]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listener: Listener | None = None
        self._pending = 0
        self._closing = False
        self.on_connect: list[Callable[[PeerId], None]] = []
        self.on_disconnect: list[Callable[[PeerId], None]] = []
        self.stats: dict[str, int] = collections.Counter()
        self._dup_logged: dict[bytes, float] = {}

    # ---- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        if self.config.listen is not None:
            self._listener = await self.transport.listen(self.config.listen, self._accept)
            log.info("node %s listening on %s", short_id(self.peer_id), self._listener.address)

    @property
    def listen_address(self) -> Any:
        return self._listener.address if self._listener else None

    async def close(self) -> None:
        """Stop listening and dialing, close every connection, wait for all tasks."""
        self._closing = True
        if self._listener is not None:
            await self._listener.close()
        for conn in [*self._conns.values(), *self._retiring]:
            self._drop(conn, "node shutting down")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        streams, self._streams = list(self._streams), set()
        for stream in streams:
            stream.close()
        await asyncio.gather(*(s.wait_closed() for s in streams), return_exceptions=True)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- public API ---------------------------------------------------------------------
    def register(self, chain_id: ChainId, kind: int, handler: MessageHandler) -> None:
        """Route messages of (chain id, kind) to ``handler(peer, chain_id, kind, payload)``.

        The handler runs in the peer's reader task: while it runs, that peer's next messages
        wait (per-peer order is kept; a slow handler slows only its peer). A handler raising
        :class:`~tfnode.net.errors.InvalidMessage` gets the peer disconnected and banned.
        """
        if is_control(kind):
            raise ValueError(f"kind 0x{kind:02x} is reserved for link control")
        self._handlers[(chain_id, kind)] = handler

    def unregister_chain(self, chain_id: ChainId) -> None:
        """Remove every handler of ``chain_id`` (the node left it); its queued inbound
        messages are dropped as they come up."""
        for key in [k for k in self._handlers if k[0] == chain_id]:
            del self._handlers[key]

    @property
    def chains(self) -> list[ChainId]:
        """The chains this node serves now."""
        return list(self._hs.members)

    def set_members(self, members: Mapping[ChainId, Collection[bytes]]) -> None:
        """Serve exactly the chains of ``members`` from now on (each with its members'
        PeerIds): new handshakes use them, every open link's admitted chains are recomputed,
        and every peer is told (a CHAINS control message) so it does the same. No link is
        closed, so the chains that stay are not disturbed."""
        if not 1 <= len(members) <= MAX_CHAINS:
            raise ValueError(f"a node serves 1..{MAX_CHAINS} chains; got {len(members)}")
        self._hs.members = {c: frozenset(m) for c, m in members.items()}
        note = encode_envelope(Kind.CHAINS, b"", encode_chain_list(list(self._hs.members)))
        for conn in list(self._conns.values()):
            self._admit(conn)
            self._control(conn, note)
        self.stats["chain_set_changes"] += 1

    def _admit(self, conn: PeerConnection) -> None:
        """Recompute the chains ``conn``'s peer is admitted on (as the handshake does)."""
        members = self._hs.members
        conn.chains = {c for c in conn.peer_chains if c in members and conn.peer_id in members[c]}

    def add_peer(self, peer_id: bytes, address: Any) -> None:
        """Keep a connection to ``peer_id`` at ``address``: dial now and after every loss."""
        if peer_id == self.peer_id or peer_id in self._dialers:
            return
        self._dialers[peer_id] = self._spawn(self._dial_loop(PeerId(peer_id), address), f"dial-{short_id(peer_id)}")

    def remove_peer(self, peer_id: bytes) -> None:
        task = self._dialers.pop(peer_id, None)
        if task is not None:
            task.cancel()

    @property
    def peers(self) -> list[PeerId]:
        return [PeerId(p) for p in self._conns]

    def is_connected(self, peer_id: bytes) -> bool:
        return peer_id in self._conns

    def heard_within(self, peer_id: bytes, seconds: float) -> bool:
        """Connected, and a frame from the peer was read in the last ``seconds``. A peer that
        hangs (a stopped process, a frozen machine) keeps its link open: only silence tells."""
        conn = self._conns.get(peer_id)
        return conn is not None and self._clock() - conn.last_heard <= seconds

    def send(self, peer_id: bytes, chain_id: ChainId, kind: int, payload: bytes) -> bool:
        """Queue a message for one peer. False if not connected or dropped by the queue policy."""
        conn = self._conns.get(peer_id)
        if conn is None:
            self.stats["send_not_connected"] += 1
            return False
        return self._enqueue(conn, chain_id, is_gossip(kind), encode_envelope(kind, chain_id, payload))

    def broadcast(self, chain_id: ChainId, kind: int, payload: bytes, exclude: Iterable[bytes] = ()) -> int:
        """Queue a message for every connected peer admitted on ``chain_id``; returns how many."""
        data, skip, n = encode_envelope(kind, chain_id, payload), set(exclude), 0
        for conn in list(self._conns.values()):
            if conn.peer_id not in skip and chain_id in conn.chains:
                n += self._enqueue(conn, chain_id, is_gossip(kind), data)
        return n

    def ban(self, key: Hashable, reason: str, duration: float | None = None) -> None:
        """Ban a PeerId or a host address; an open connection of a banned PeerId is closed."""
        self._bans.ban(key, self.config.ban_duration if duration is None else duration)
        self.stats["bans"] += 1
        name = short_id(key) if isinstance(key, bytes) else key
        log.warning("banned %s for %.0f s: %s", name, self._bans.remaining(key), reason)
        conn = self._conns.get(key) if isinstance(key, bytes) else None
        if conn is not None:
            self._drop(conn, f"banned: {reason}")

    def is_banned(self, key: Hashable) -> bool:
        return self._bans.is_banned(key)

    async def wait_connected(self, peers: Iterable[bytes], timeout: float) -> None:
        """Wait until every peer in ``peers`` is connected (TimeoutError otherwise)."""
        want = set(peers)
        async with asyncio.timeout(timeout):
            while not want <= self._conns.keys():
                await asyncio.sleep(0.01)

    # ---- connection setup ---------------------------------------------------------------
    async def _accept(self, stream: ByteStream) -> None:
        host = _address_key(stream.remote_address)
        if self._closing or self._bans.is_banned(host) or self._pending >= self.config.max_pending_handshakes:
            self.stats["inbound_refused"] += 1
            stream.close()
            return
        self._pending += 1
        self._streams.add(stream)
        try:
            session = await self._handshake(stream, initiator=False)
        finally:
            self._pending -= 1
        if session is not None:
            self._register(stream, session, dialer=session.peer_id)

    async def _handshake(self, stream: ByteStream, *, initiator: bool) -> Session | None:
        """Run the handshake; on failure close the stream, apply the ban policy, return None."""
        try:
            return await handshake(stream, self._hs, initiator=initiator)
        except MalformedMessage as err:
            # Before authentication the only name of the sender is its address.
            self.stats["handshake_malformed"] += 1
            self.ban(_address_key(stream.remote_address), f"malformed handshake: {err}")
        except HandshakeRefused as err:
            self.stats["handshake_refused"] += 1
            if err.reason == RefuseReason.WRONG_VERSION:
                # An operator must see this one: a member stays cut off until someone upgrades.
                self.stats["handshake_wrong_version"] += 1
                log.warning("handshake with %s refused: %s", stream.remote_address, err)
            else:
                log.info("handshake with %s refused: %s", stream.remote_address, err)
        except (HandshakeError, ConnectionClosed) as err:
            self.stats["handshake_failed"] += 1
            log.info("handshake with %s failed: %s", stream.remote_address, err)
        stream.close()
        self._streams.discard(stream)
        return None

    async def _dial_loop(self, peer_id: PeerId, address: Any) -> None:
        attempt = 0
        while not self._closing:
            conn = self._conns.get(peer_id)
            if conn is not None:
                loop = asyncio.get_running_loop()
                since = loop.time()
                await conn.closed.wait()
                # A link that dies young counts as a failed attempt, so a peer that accepts
                # and drops us at once is not redialed in a tight loop.
                attempt = 0 if loop.time() - since >= self.config.backoff_cap else attempt + 1
                await asyncio.sleep(self._backoff.delay(attempt))
                continue
            wait = self._bans.remaining(peer_id)
            if wait > 0:
                await asyncio.sleep(min(wait, self.config.backoff_cap))
                continue
            try:
                stream = await self.transport.dial(address)
            except ConnectionClosed as err:
                self.stats["dial_failed"] += 1
                log.debug("dial %s at %s failed: %s", short_id(peer_id), address, err)
            else:
                self._streams.add(stream)
                session = await self._handshake(stream, initiator=True)
                if session is not None and session.peer_id != peer_id:
                    log.warning("%s answered as %s, expected %s", address, short_id(session.peer_id), short_id(peer_id))
                    self.stats["dial_wrong_peer"] += 1
                    stream.close()
                    self._streams.discard(stream)
                elif session is not None:
                    attempt = 0
                    self._register(stream, session, dialer=self.peer_id)
                    continue
            await asyncio.sleep(self._backoff.delay(attempt))
            attempt += 1

    def _prefer_new(self, old: PeerConnection, new: PeerConnection) -> bool:
        lower = min(self.peer_id, new.peer_id)
        if (old.dialer == lower) != (new.dialer == lower):
            return new.dialer == lower
        return True  # same direction: the old one is probably dead and not yet noticed

    def _second_process(self, old: PeerConnection, new: PeerConnection) -> bool:
        """True (and logged) when ``new`` comes from another process than the live ``old``
        link under the same key: two nodes run with one key, and the newcomer is refused.
        An old link silent for ``DUPLICATE_QUIET`` seconds is taken for dead (the peer
        restarted and its old socket was never closed) and the newcomer is let in."""
        if old.closed.is_set() or old.retiring or old.session.instance == new.session.instance:
            return False
        quiet = self._clock() - old.last_heard
        if quiet >= DUPLICATE_QUIET:
            return False
        self.stats["second_process_refused"] += 1
        now = self._clock()
        if now - self._dup_logged.get(new.peer_id, -1e9) >= 30.0:
            self._dup_logged[new.peer_id] = now
            log.warning(
                "refused a second node with the key of %s from %s (process %s): already connected to that key "
                "from %s (process %s, heard %.1f s ago); two nodes run with one key and would vote twice",
                short_id(new.peer_id),
                new.address,
                new.session.instance.hex()[:8],
                old.address,
                old.session.instance.hex()[:8],
                quiet,
            )
        return True

    def _register(self, stream: ByteStream, session: Session, dialer: bytes) -> None:
        c = self.config
        link = SecureLink(
            stream, session, max_frame_size=c.max_frame_size, rekey_interval=c.rekey_interval, max_frames=c.max_frames
        )
        conn = PeerConnection(link, session, dialer, stream.remote_address)
        if self._closing or self._bans.is_banned(session.peer_id):
            link.close()
            self._streams.discard(stream)
            return
        old = self._conns.get(session.peer_id)
        if old is not None and self._second_process(old, conn):
            link.close()
            self._streams.discard(stream)
            return
        conn.last_heard = self._clock()
        if old is None or self._prefer_new(old, conn):
            winner, loser = conn, old
            self._conns[session.peer_id] = conn
        else:
            winner, loser = old, conn
        self.stats["connections"] += 1
        if session.peer_id not in self._buckets:
            self._buckets[session.peer_id] = (
                TokenBucket(c.rate_bytes, c.burst_bytes, self._clock),
                TokenBucket(c.rate_messages, c.burst_messages, self._clock),
            )
        name = short_id(session.peer_id)
        conn.tasks = [self._spawn(self._reader(conn), f"read-{name}"), self._spawn(self._writer(conn), f"write-{name}")]
        if loser is not None:
            # Either end may already have written on the loser: retire it, never cut it.
            self.stats["duplicates"] += 1
            self._retire(loser, winner)
            return
        log.info("connected to %s (%s)", name, "dialed" if dialer == self.peer_id else "accepted")
        for cb in self.on_connect:
            cb(session.peer_id)

    async def _release(self, stream: ByteStream) -> None:
        await stream.wait_closed()
        self._streams.discard(stream)

    def _retire(self, old: PeerConnection, new: PeerConnection) -> None:
        """Move ``old``'s queue to ``new``; say GOODBYE on ``old`` and read it until the peer's."""
        for chain, q in old.queues.items():  # nothing queued is lost to the switch
            new.queues.setdefault(chain, collections.deque()).extend(q)
            new.queued += len(q)
        old.queues.clear()
        old.queued = 0
        if new.queued:
            new.wake.set()
        old.retiring = True
        self._retiring.add(old)
        self._control(old, encode_envelope(Kind.GOODBYE, b"", b""))

        async def deadline() -> None:
            await asyncio.sleep(self.config.retire_timeout)
            self._drop(old, "retired duplicate: no GOODBYE from the peer in time")

        old.tasks.append(self._spawn(deadline(), f"retire-{short_id(old.peer_id)}"))

    def _drop(self, conn: PeerConnection, reason: str) -> None:
        if conn.closed.is_set():
            return
        conn.closed.set()
        self._retiring.discard(conn)
        conn.link.close()
        self._spawn(self._release(conn.link.stream), "closing")
        current = asyncio.current_task()
        for task in conn.tasks:
            if task is not current:
                task.cancel()
        if self._conns.get(conn.peer_id) is conn:
            del self._conns[conn.peer_id]
            self.stats["disconnects"] += 1
            log.info("disconnected from %s: %s", short_id(conn.peer_id), reason)
            for cb in self.on_disconnect:
                cb(conn.peer_id)

    # ---- per-connection tasks -----------------------------------------------------------
    def _control(self, conn: PeerConnection, data: bytes) -> None:
        """Queue a link-control frame (PING, PONG, CHAINS, GOODBYE): written before any chain's."""
        if conn.closed.is_set():
            return
        conn.control.append(data)
        conn.wake.set()

    def _enqueue(self, conn: PeerConnection, chain: ChainId, gossip: bool, data: bytes) -> bool:
        if conn.closed.is_set():
            return False
        q = conn.queues.get(chain)
        if q is None:
            q = conn.queues[chain] = collections.deque()
        if len(q) >= self.config.send_queue_limit:
            victim = next((i for i, (g, _) in enumerate(q) if g), None)
            if victim is None and gossip:
                self.stats["gossip_dropped"] += 1
                return False
            if victim is None:
                if len(self._hs.members) > 1:
                    # Several chains share the link: closing it would stall the others too.
                    self.stats["chain_send_dropped"] += 1
                    return False
                self.stats["queue_overflow_closes"] += 1
                self._drop(conn, f"send queue full ({len(q)} must-deliver messages)")
                return False
            del q[victim]
            conn.queued -= 1
            self.stats["gossip_dropped"] += 1
        q.append((gossip, data))
        conn.queued += 1
        conn.wake.set()
        return True

    def _next_frames(self, conn: PeerConnection, limit: int) -> list[bytes]:
        """Up to ``limit`` frames to write now: link control first, then the chains' queues
        in turn (an equal share each this pass), so no chain waits behind another's backlog."""
        out: list[bytes] = []
        while conn.control and len(out) < limit:
            out.append(conn.control.popleft())
        busy = [q for q in conn.queues.values() if q]
        if not busy:
            return out
        share = max(1, (limit - len(out)) // len(busy))
        for q in busy:
            for _ in range(min(share, len(q))):
                out.append(q.popleft()[1])
                conn.queued -= 1
        return out

    async def _writer(self, conn: PeerConnection) -> None:
        ping = encode_envelope(Kind.PING, b"", b"")
        try:
            while True:
                if not conn.queued and not conn.control:
                    conn.wake.clear()
                    try:
                        async with asyncio.timeout(self.config.ping_interval):
                            await conn.wake.wait()
                    except TimeoutError:
                        conn.control.append(ping)
                    continue
                # Write what is queued (up to a bound), then wait for the socket once.
                for data in self._next_frames(conn, 256):
                    self.stats["bytes_sent"] += conn.link.write(data)
                    self.stats["messages_sent"] += 1
                await conn.link.stream.drain()
                if conn.retiring and not conn.queued and not conn.control:
                    return  # the GOODBYE is out: nothing more is written on this link
        except (ConnectionClosed, NonceExhausted) as err:
            self._drop(conn, f"write failed: {err}")

    async def _throttle(self, conn: PeerConnection, size: int) -> None:
        by, msgs = self._buckets[conn.peer_id]
        while True:
            wait = max(by.wait_time(size), msgs.wait_time(1))
            if wait <= 0:
                by.consume(size)
                msgs.consume(1)
                return
            self.stats["throttled"] += 1
            await asyncio.sleep(min(wait, 1.0))

    async def _reader(self, conn: PeerConnection) -> None:
        peer = conn.peer_id
        try:
            while True:
                async with asyncio.timeout(self.config.idle_timeout):
                    data = await conn.link.recv()
                conn.last_heard = self._clock()
                await self._throttle(conn, len(data))
                self.stats["messages_received"] += 1
                self.stats["bytes_received"] += len(data)
                env = decode_envelope(data)
                if env.kind == Kind.PING:
                    self._control(conn, encode_envelope(Kind.PONG, b"", b""))
                    continue
                if env.kind == Kind.GOODBYE:
                    # The peer writes nothing more here. If we retired this link too, it is
                    # done; otherwise the peer keeps reading it until our GOODBYE, which we
                    # send when the connection it prefers reaches us.
                    if conn.retiring:
                        self._drop(conn, "retired duplicate closed")
                        return
                    continue
                if env.kind == Kind.CHAINS:
                    conn.peer_chains = set(decode_chain_list(env.payload))
                    self._admit(conn)
                    continue
                if is_control(env.kind):
                    continue
                chain = env.chain_id
                if chain not in conn.chains:
                    if chain not in self._hs.members:
                        # Not a chain we serve: the peer may not have heard yet that we left it.
                        self.stats["dropped_unknown_chain"] += 1
                        continue
                    raise MalformedMessage(f"message for chain {chain!r} the peer is not admitted on")
                if len(self._hs.members) > 1 or chain in conn.inboxes:
                    self._to_inbox(conn, chain, env.kind, env.payload)
                    continue
                handler = self._handlers.get((chain, env.kind))
                if handler is None:
                    # A newer peer may send kinds we do not know yet: count, do not punish.
                    self.stats["unhandled"] += 1
                    continue
                await self._run_handler(peer, handler, chain, env.kind, env.payload)
        except MalformedMessage as err:
            self.stats["malformed_bans"] += 1
            self.ban(peer, f"malformed message: {err}")
            self._drop(conn, str(err))
        except (AuthenticationError, NonceExhausted) as err:
            self.stats["auth_failures"] += 1
            self._drop(conn, str(err))
        except TimeoutError:
            self._drop(conn, f"idle for {self.config.idle_timeout} s")
        except NetworkError as err:
            self._drop(conn, str(err))

    async def _run_handler(
        self, peer: PeerId, handler: MessageHandler, chain: ChainId, kind: int, payload: bytes
    ) -> None:
        try:
            result = handler(peer, chain, kind, payload)
            if inspect.isawaitable(result):
                await result
        except (MalformedMessage, asyncio.CancelledError):
            raise
        except Exception:  # our bug, not the peer's: keep the link
            self.stats["handler_errors"] += 1
            log.exception("handler for kind 0x%02x failed on a message from %s", kind, short_id(peer))

    def _to_inbox(self, conn: PeerConnection, chain: ChainId, kind: int, payload: bytes) -> None:
        """Queue one message on its (peer, chain) inbox, within the inbox's bounds."""
        inbox = conn.inboxes.get(chain)
        if inbox is None:
            inbox = conn.inboxes[chain] = _Inbox()
            conn.tasks.append(self._spawn(self._inbox_worker(conn, chain, inbox), f"inbox-{short_id(conn.peer_id)}"))
        c, q = self.config, inbox.queue
        while q and (len(q) >= c.chain_queue_limit or inbox.size + len(payload) > c.chain_queue_bytes):
            # Full: make room by dropping this chain's oldest gossip; with none, the newest
            # message (this one) is dropped. Only this chain of this peer is affected.
            victim = None if is_gossip(kind) else next((i for i, (k, _) in enumerate(q) if is_gossip(k)), None)
            self.stats["chain_queue_dropped"] += 1
            if victim is None:
                return
            inbox.size -= len(q[victim][1])
            del q[victim]
        q.append((kind, payload))
        inbox.size += len(payload)
        inbox.wake.set()

    async def _inbox_worker(self, conn: PeerConnection, chain: ChainId, inbox: _Inbox) -> None:
        peer = conn.peer_id
        try:
            while True:
                if not inbox.queue:
                    inbox.wake.clear()
                    await inbox.wake.wait()
                    continue
                kind, payload = inbox.queue.popleft()
                inbox.size -= len(payload)
                handler = self._handlers.get((chain, kind))
                if handler is None:  # an unknown kind, or the chain was left meanwhile
                    self.stats["unhandled"] += 1
                    continue
                await self._run_handler(peer, handler, chain, kind, payload)
        except MalformedMessage as err:
            self.stats["malformed_bans"] += 1
            self.ban(peer, f"malformed message: {err}")
            self._drop(conn, str(err))
