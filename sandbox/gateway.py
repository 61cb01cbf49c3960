"""The sandbox's gateway: HELLO/IDENTIFY/READY, heartbeats, dispatch with sequence numbers, RESUME.

Sharding works as Discord's: IDENTIFY may carry ``shard: [shard_id, shard_count]``; that session's
READY lists only its guilds, and a guild's events go to the sessions whose shard is
``(guild_id >> 22) % shard_count``. Events without a guild (DMs) go to shard 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from sandbox.server import SandboxDiscord

# intents (https://discord.com/developers/docs/events/gateway#gateway-intents)
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_MODERATION = 1 << 2
GUILD_INTEGRATIONS = 1 << 4
GUILD_WEBHOOKS = 1 << 5
GUILD_MESSAGES = 1 << 9
DIRECT_MESSAGES = 1 << 12

BUFFER_SIZE = 20_000  # dispatches kept per session for RESUME
SESSION_TTL = 120.0  # seconds a detached session stays resumable


class Connection:
    """One websocket; frames go out in order through a writer task."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.request = request
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.session: GatewaySession | None = None
        self.writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        ws = self.ws
        queue = self.queue
        try:
            while True:
                frame = await queue.get()
                if frame is None:
                    return
                if ws.closed:
                    return
                await ws.send_str(frame)
        except (ConnectionError, RuntimeError):
            return

    def send(self, payload: dict[str, Any] | str) -> None:
        self.queue.put_nowait(payload if isinstance(payload, str) else json.dumps(payload))


def shard_of(guild_id: int, shard_count: int) -> int:
    """Discord's sharding formula: which shard receives a guild's events."""
    return (guild_id >> 22) % shard_count


def _guild_of(event: str, data: dict[str, Any]) -> int | None:
    """The guild an event belongs to (None: not a guild event, e.g. a DM)."""
    gid = data.get("guild_id")
    if gid is None and event in ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"):
        gid = data.get("id")
    return int(gid) if gid is not None else None


class GatewaySession:
    def __init__(self, token: str, intents: int, shard: tuple[int, int] = (0, 1)) -> None:
        self.id = secrets.token_hex(16)
        self.token = token
        self.intents = intents
        self.shard = shard
        self.seq = 0
        self.buffer: deque[tuple[int, str]] = deque(maxlen=BUFFER_SIZE)
        self.conn: Connection | None = None
        self.detached_at: float | None = None

    def receives(self, guild_id: int | None) -> bool:
        shard_id, shard_count = self.shard
        if guild_id is None:
            return shard_id == 0
        return shard_of(guild_id, shard_count) == shard_id

    def push(self, event: str, data_json: str) -> None:
        self.seq += 1
        frame = f'{{"op":0,"s":{self.seq},"t":"{event}","d":{data_json}}}'
        self.buffer.append((self.seq, frame))
        if self.conn is not None:
            self.conn.queue.put_nowait(frame)

    def can_resume_from(self, seq: int | None) -> bool:
        if seq is None:
            return False
        if seq >= self.seq:
            return True
        return bool(self.buffer) and self.buffer[0][0] <= seq + 1


class Gateway:
    """Gateway state of one sandbox (several sessions over time, several at once)."""

    def __init__(self, sandbox: SandboxDiscord) -> None:
        self.sb = sandbox
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: set[Connection] = set()
        self.heartbeat_interval_ms = 41250
        self.connected = asyncio.Event()
        self.ready = asyncio.Event()
        self.identifies = 0
        self.resumes = 0
        self._hold: asyncio.Event | None = None

    # ------------------------------------------------------------- dispatch
    def dispatch(self, event: str, data: dict[str, Any], intent: int = 0) -> None:
        if not self.sessions:
            return
        data_json = json.dumps(data, separators=(",", ":"))
        guild_id = _guild_of(event, data)
        for s in self.sessions.values():
            if intent and not s.intents & intent:
                continue
            if not s.receives(guild_id):
                continue
            s.push(event, data_json)

    def _attached(self) -> list[GatewaySession]:
        return [s for s in self.sessions.values() if s.conn is not None]

    def _update_connected(self) -> None:
        if self._attached():
            self.connected.set()
        else:
            self.connected.clear()

    def _expire(self) -> None:
        now = time.monotonic()
        for sid, s in list(self.sessions.items()):
            if s.conn is None and s.detached_at is not None and now - s.detached_at > SESSION_TTL:
                del self.sessions[sid]

    # ------------------------------------------------------------- control
    def hold(self) -> None:
        """New connections wait (before HELLO) until :meth:`release`."""
        if self._hold is None:
            self._hold = asyncio.Event()

    def release(self) -> None:
        if self._hold is not None:
            self._hold.set()
            self._hold = None

    async def disconnect(self, code: int | None = 4000, reconnect_op: bool = False) -> None:
        for conn in list(self.connections):
            session = conn.session
            if session is not None:
                session.conn = None
                session.detached_at = time.monotonic()
            if reconnect_op:
                # the session stays attached to this connection until the client closes it
                conn.session = None
                conn.send({"op": 7, "d": None})
                continue
            conn.session = None
            conn.queue.put_nowait(None)
            if code is None:
                transport = conn.request.transport
                if transport is not None:
                    transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.ws.close(code=code, message=b"sandbox disconnect"), 2.0)
        self._update_connected()

    async def close(self) -> None:
        self.release()
        for conn in list(self.connections):
            conn.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=1001, message=b"sandbox closing"), 1.0)
        self.sessions.clear()
        self._update_connected()

    # ------------------------------------------------------------- websocket
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        if self._hold is not None:
            await self._hold.wait()
        conn = Connection(ws, request)
        self.connections.add(conn)
        conn.send(
            {
                "op": 10,
                "s": None,
                "t": None,
                "d": {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ["sandbox"]},
            }
        )
        close_code: int | None = None
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    try:
                        payload = json.loads(msg.data)
                    except ValueError:
                        await ws.close(code=4002, message=b"Error while decoding payload.")
                        break
                    await self._on_message(conn, payload)
                elif msg.type is WSMsgType.BINARY:
                    await ws.close(code=4002, message=b"Error while decoding payload.")
                    break
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
            close_code = ws.close_code
        finally:
            self.connections.discard(conn)
            conn.queue.put_nowait(None)
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
                session.detached_at = time.monotonic()
                if close_code in (1000, 1001):
                    # a clean close ends the session (Discord: bot goes offline, cannot resume)
                    self.sessions.pop(session.id, None)
            self._update_connected()
        return ws

    async def _on_message(self, conn: Connection, payload: dict[str, Any]) -> None:
        op = payload.get("op")
        d = payload.get("d")
        if op == 1:
            conn.send({"op": 11, "s": None, "t": None, "d": None})
        elif op == 2:
            await self._identify(conn, d or {})
        elif op == 6:
            await self._resume(conn, d or {})
        elif op == 8:
            self._request_members(conn, d or {})
        elif op in (3, 4):
            return
        else:
            await conn.ws.close(code=4001, message=b"Unknown opcode.")

    async def _identify(self, conn: Connection, d: dict[str, Any]) -> None:
        sb = self.sb
        if conn.session is not None:
            await conn.ws.close(code=4005, message=b"Already authenticated.")
            return
        if d.get("token") != sb.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        intents = d.get("intents")
        if not isinstance(intents, int):
            await conn.ws.close(code=4013, message=b"Invalid intent(s).")
            return
        shard = d.get("shard")
        if shard is None:
            shard = [0, 1]
        if not (
            isinstance(shard, list)
            and len(shard) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) for x in shard)
            and 0 <= shard[0] < shard[1]
        ):
            await conn.ws.close(code=4010, message=b"Invalid shard.")
            return
        self._expire()
        session = GatewaySession(sb.token, intents, (shard[0], shard[1]))
        self.identifies += 1
        guilds = [g for g in sb._bot_guilds() if session.receives(g.id)]
        ready = {
            "v": 10,
            "user": sb._bot_user_payload(),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": sb.gateway_url,
            "shard": list(session.shard),
            "application": {"id": str(sb.application_id), "flags": sb.application_flags},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "auth": {},
            "_trace": ["sandbox"],
        }
        # attach first so nothing dispatched from here on is lost
        self.sessions[session.id] = session
        session.push("READY", json.dumps(ready))
        for g in guilds:
            session.push("GUILD_CREATE", json.dumps(sb._guild_create_payload(g, intents)))
        session.conn = conn
        conn.session = session
        for _seq, frame in session.buffer:
            conn.queue.put_nowait(frame)
        self._update_connected()
        self.ready.set()

    async def _resume(self, conn: Connection, d: dict[str, Any]) -> None:
        sb = self.sb
        session = self.sessions.get(d.get("session_id") or "")
        seq = d.get("seq")
        if d.get("token") != sb.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        if session is None or seq is None or not session.can_resume_from(seq):
            conn.send({"op": 9, "s": None, "t": None, "d": False})
            return
        if session.conn is not None and session.conn is not conn:
            old = session.conn
            old.session = None
            old.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(old.ws.close(code=4000), 1.0)
        self.resumes += 1
        for s, frame in session.buffer:
            if s > seq:
                conn.queue.put_nowait(frame)
        session.conn = conn
        session.detached_at = None
        conn.session = session
        session.push("RESUMED", json.dumps({"_trace": ["sandbox"]}))
        self._update_connected()

    def _request_members(self, conn: Connection, d: dict[str, Any]) -> None:
        session = conn.session
        if session is None:
            return
        gid = d.get("guild_id")
        ids = gid if isinstance(gid, list) else [gid]
        for one in ids:
            guild = self.sb.guilds.get(int(one)) if one is not None else None
            if guild is None:
                continue
            from sandbox.models import member_payload

            members = guild.members
            if d.get("user_ids"):
                wanted = {int(x) for x in d["user_ids"]}
                members = [m for m in members if m.id in wanted]
            elif d.get("query"):
                members = [m for m in members if m.user.name.startswith(d["query"])]
            limit = d.get("limit") or 0
            if limit:
                members = members[:limit]
            chunk = {
                "guild_id": str(guild.id),
                "members": [member_payload(m) for m in members],
                "chunk_index": 0,
                "chunk_count": 1,
            }
            if d.get("nonce") is not None:
                chunk["nonce"] = d["nonce"]
            session.push("GUILD_MEMBERS_CHUNK", json.dumps(chunk))
