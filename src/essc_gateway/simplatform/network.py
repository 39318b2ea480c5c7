"""The platform's network front: a TCP proxy that can refuse or reset connections.

Clients dial the proxy (`SimulatedPlatform.address`); it forwards bytes both ways to the
gRPC server (`SimulatedPlatform.control_address`). Connection faults act here, so the
platform is "not reached at all": no HTTP/2 answer, no gRPC status from the server, no
server metadata.

- REFUSE: the listening socket is closed (the OS refuses new connections) and every open
  proxied connection is reset (gRPC keeps one HTTP/2 connection open: without the reset
  the fault would never be seen). When the fault ends, the proxy listens again on the
  same port.
- RESET: connections are accepted, then closed with RST (SO_LINGER 0) before anything is
  forwarded; connections open when the fault begins are reset too.

Following the timeline (a `FakeClock` moves without telling anyone): the proxy asks the
fault plan at every accept, in `sync()` (which the platform calls whenever the fault
configuration changes and from `SimulatedPlatform.sync_network()`), and every
`poll_interval` seconds of real time from a background task. A test that advances a fake
clock either awaits `platform.sync_network()` (deterministic) or waits one poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

from essc_gateway.simplatform.faults import ConnectionFailure, ConnectionMode

_log = logging.getLogger(__name__)

FaultSource = Callable[[], ConnectionFailure | None]


@dataclass(slots=True)
class NetworkStats:
    """Connection attempts seen by the proxy (refused ones never reach it)."""

    accepted: int = 0
    """Connections accepted, whether then forwarded or reset."""
    reset: int = 0
    """Connections reset by a connection fault: at accept, or open when it began."""


class PlatformProxy:
    """Forwards TCP connections from `host:port` to the gRPC server at `upstream`."""

    def __init__(
        self,
        upstream: tuple[str, int],
        fault: FaultSource,
        *,
        stats: NetworkStats | None = None,
        poll_interval: float = 0.05,
    ) -> None:
        self.stats = stats if stats is not None else NetworkStats()
        self.upstream = upstream
        self._fault = fault
        self._poll_interval = poll_interval
        self._host = "127.0.0.1"
        self._port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[_ClientSide] = set()
        self._mode: ConnectionMode | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._follower: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def port(self) -> int:
        return self._port

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self, host: str, port: int) -> int:
        """Listens (unless a REFUSE fault is in force) and starts following the plan."""
        self._host = host
        self._port = port
        if port == 0 or self._current_mode() is not ConnectionMode.REFUSE:
            # Port 0 must be bound once to learn the port we will keep for good.
            await self._listen()
        self._follower = asyncio.create_task(self._follow(), name="platform-proxy-follow")
        await self.sync()
        return self._port

    def wake(self) -> None:
        """Asks the background task to re-check the fault plan now."""
        self._wake.set()

    async def sync(self) -> None:
        """Brings the listener and open connections in line with the fault in force now."""
        async with self._lock:
            if self._closed:
                return
            mode = self._current_mode()
            if mode is not None and mode is not self._mode:
                self._reset_all()  # a connection fault begins: open connections go too
            self._mode = mode
            if mode is ConnectionMode.REFUSE:
                self._stop_listening()
            elif self._server is None:
                await self._listen()

    def stop_accepting(self) -> None:
        """Closes the listener for good (the platform is stopping)."""
        self._closed = True
        self._stop_listening()

    async def close(self) -> None:
        """Stops listening and following, and drops every open connection."""
        self.stop_accepting()
        follower, self._follower = self._follower, None
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        for connection in list(self._connections):
            connection.abort(reset=False)

    # --- internals ------------------------------------------------------------------------

    def _current_mode(self) -> ConnectionMode | None:
        fault = self._fault()
        return None if fault is None else fault.mode

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.sync()
            except OSError as error:  # e.g. the port was taken meanwhile: retry next poll
                _log.warning("platform proxy cannot listen again: %s", error)

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ClientSide(self), self._host, self._port, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]

    def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()

    def _reset_all(self) -> None:
        for connection in list(self._connections):
            self.stats.reset += 1
            connection.abort(reset=True)

    # Called by the connections (this module only).

    def admit(self, connection: _ClientSide) -> bool:
        """Counts a new connection; False when a connection fault says to reset it."""
        self.stats.accepted += 1
        mode = self._current_mode()
        if mode is not self._mode:
            self.wake()  # the timeline moved on since the last sync
        if mode is not None:
            self.stats.reset += 1
            return False
        self._connections.add(connection)
        return True

    def forget(self, connection: _ClientSide) -> None:
        self._connections.discard(connection)


def _reset(transport: asyncio.BaseTransport) -> None:
    """Closes with RST instead of FIN (SO_LINGER on, timeout 0)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    else:
        transport.close()


class _Relay(asyncio.Protocol):
    """One side of a proxied connection: what the other side may ask of its transport."""

    _transport: asyncio.Transport | None = None

    def write(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.write(data)

    def write_eof(self) -> None:
        if self._transport is not None and self._transport.can_write_eof():
            self._transport.write_eof()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def pause_reading(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()


class _ClientSide(_Relay):
    """The client's connection to the proxy; owns the matching upstream connection."""

    def __init__(self, proxy: PlatformProxy) -> None:
        self._proxy = proxy
        self._transport: asyncio.Transport | None = None
        self._upstream: _UpstreamSide | None = None
        self._connecting: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if not self._proxy.admit(self):
            _reset(transport)
            return
        transport.pause_reading()  # until the upstream connection is up
        self._connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = self._proxy.upstream
        try:
            _, upstream = await loop.create_connection(lambda: _UpstreamSide(self), host, port)
        except OSError:
            self.abort(reset=True)  # the server is gone: the client sees a reset
            return
        if self._transport is None or self._transport.is_closing():
            upstream.close()
            return
        self._upstream = upstream
        self._transport.resume_reading()

    def abort(self, *, reset: bool) -> None:
        if self._transport is not None:
            if reset:
                _reset(self._transport)
            else:
                self._transport.abort()
        if self._upstream is not None:
            self._upstream.close()
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()

    def data_received(self, data: bytes) -> None:
        if self._upstream is not None:
            self._upstream.write(data)

    def eof_received(self) -> bool:
        if self._upstream is not None:
            self._upstream.write_eof()
        return True  # half-close: the other direction may still carry data

    def connection_lost(self, exc: Exception | None) -> None:
        self._proxy.forget(self)
        if self._upstream is not None:
            self._upstream.close()
        self._transport = None

    def pause_writing(self) -> None:
        if self._upstream is not None:
            self._upstream.pause_reading()

    def resume_writing(self) -> None:
        if self._upstream is not None:
            self._upstream.resume_reading()


class _UpstreamSide(_Relay):
    """The proxy's connection to the gRPC server, for one client connection."""

    def __init__(self, client: _ClientSide) -> None:
        self._client = client
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._client.write(data)

    def eof_received(self) -> bool:
        self._client.write_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._client.close()
        self._transport = None

    def pause_writing(self) -> None:
        self._client.pause_reading()

    def resume_writing(self) -> None:
        self._client.resume_reading()
