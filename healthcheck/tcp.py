"""TCP_CHECK (keepalived check_tcp.c) and the connect helper every TCP checker shares.

The connect is done on a plain non-blocking socket that trio only waits on
(``wait_writable``), not through a trio socket object: a check is one connect
and one close, and the wrapper's address resolution and bookkeeping were a
large part of a check's CPU.

Timeout rule (keepalived check_tcp.c ``tcp_connect_thread`` registers the
connect with ``thread_add_write(…, co->connection_to)``; lib/scheduler.c
``thread_fetch_next_queue`` moves every thread whose fd epoll reported ready
before the timerfd's thread runs ``thread_rb_move_ready`` on the timers): the
deadline starts when the connect is issued, and a socket that is already
writable when the loop wakes wins over a deadline that expired meanwhile.
trio gives the same order (I/O events are processed before deadlines, and a
task already rescheduled by its I/O is not cancelled), so a starved process
that resumes with a connected socket and an expired deadline passes the check.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Iterator

import trio

from healthcheck.api import Result, Target

_SO_MARK = getattr(socket, "SO_MARK", 36)
_SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


def raw_socket(target: Target, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A non-blocking socket with keepalived's ``conn_opts_t`` applied (bindto, bind_port,
    bind_if, fwmark), not connected."""
    family = socket.AF_INET6 if ":" in target.address else socket.AF_INET
    sock = socket.socket(family, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        if target.fwmark:
            sock.setsockopt(socket.SOL_SOCKET, _SO_MARK, target.fwmark)
        if target.bind_if:
            sock.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, target.bind_if.encode())
        if target.bindto or target.bind_port:
            any_addr = "::" if family == socket.AF_INET6 else "0.0.0.0"
            sock.bind((target.bindto or any_addr, target.bind_port or 0))
    except BaseException:
        sock.close()
        raise
    return sock


async def connect_raw(target: Target, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A connected non-blocking socket; raises OSError as ``connect`` would."""
    sock = raw_socket(target, kind)
    try:
        if target.port is None:
            await trio.lowlevel.checkpoint()
            return sock
        err = sock.connect_ex((target.address, target.port))
        if err == errno.EINPROGRESS:
            await trio.lowlevel.wait_writable(sock)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        else:
            await trio.lowlevel.checkpoint()
        if err:
            raise OSError(err, os.strerror(err))
    except BaseException:
        sock.close()
        raise
    return sock


async def open_socket(target: Target, kind: int = socket.SOCK_STREAM) -> trio.socket.SocketType:
    """:func:`connect_raw`, as a trio socket (for checkers that talk over it)."""
    return trio.socket.from_stdlib_socket(await connect_raw(target, kind))


async def open_tcp(target: Target) -> trio.SocketStream:
    return trio.SocketStream(await open_socket(target))


class StepTimeout(Exception):
    """One I/O step of a check outlived its connect_timeout."""

    reason = "timeout"


@contextlib.contextmanager
def step(timeout: float) -> Iterator[None]:
    """Bound one I/O step of a check by ``timeout``; raise :class:`StepTimeout` when it expires.

    keepalived registers each step of a multi-step check (HTTP, SSL, SMTP)
    with its own ``connect_timeout``, so a slow but progressing server passes.
    The deadline starts with the step, and a step whose I/O completed when the
    loop woke wins over a deadline that expired meanwhile (see the module
    docstring), so only a step that really waited ``timeout`` fails.
    """
    with trio.move_on_after(timeout) as scope:
        yield
    if scope.cancelled_caught:
        raise StepTimeout


async def receive_step(stream: trio.abc.Stream, max_bytes: int, timeout: float) -> bytes:
    """One read of a check, bounded by ``timeout`` (:func:`step`); b"" at EOF.

    keepalived's loop hands a thread whose socket is ready its I/O even when
    its timer expired too (lib/scheduler.c ``thread_fetch_next_queue``).  trio
    orders I/O before deadlines within one wake-up, yet a checker resumed
    after a long SIGSTOP with its answer waiting was seen to get its deadline
    first in about one run in five.  So a read whose deadline expired takes
    what a plain socket already holds, with one last non-blocking read,
    before it counts as a timeout.  A TLS stream has no such read: its bytes
    are not the answer yet.
    """
    try:
        with step(timeout):
            return bytes(await stream.receive_some(max_bytes))
    except StepTimeout:
        if not isinstance(stream, trio.SocketStream):
            raise
        try:
            return os.read(stream.socket.fileno(), max_bytes)  # the socket is non-blocking
        except OSError:  # BlockingIOError: nothing there; anything else: a failed step
            raise StepTimeout from None


def os_reason(e: OSError) -> str:
    """A stable reason name for a socket error ("connection refused", …)."""
    if e.errno:
        return os.strerror(e.errno).lower()
    return (e.strerror or type(e).__name__).lower()


class TcpChecker:
    """Passes when a TCP connection opens within the timeout (check_tcp.c ``tcp_check_thread``)."""

    #: Its one step is bounded by ``timeout`` here: the scheduler needs no guard.
    bounds_itself = True

    async def check(self, target: Target, timeout: float) -> Result:
        with trio.move_on_after(timeout):
            try:
                sock = await connect_raw(target)
            except OSError as e:
                return Result.failed(os_reason(e))
            sock.close()
            return Result.passed("connected")
        return Result.failed("timeout connecting")
