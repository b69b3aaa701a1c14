"""TCP_CHECK (keepalived check_tcp.c) and the connect helper every TCP checker shares."""

from __future__ import annotations

import os
import socket

import trio

from healthcheck.api import Result, Target

_SO_MARK = getattr(socket, "SO_MARK", 36)
_SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


async def open_socket(target: Target, kind: int = socket.SOCK_STREAM) -> trio.socket.SocketType:
    """A socket with keepalived's ``conn_opts_t`` applied (bindto, bind_port, bind_if, fwmark)."""
    family = socket.AF_INET6 if ":" in target.address else socket.AF_INET
    sock = trio.socket.socket(family, kind)
    try:
        if target.fwmark:
            sock.setsockopt(socket.SOL_SOCKET, _SO_MARK, target.fwmark)
        if target.bind_if:
            sock.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, target.bind_if.encode())
        if target.bindto or target.bind_port:
            any_addr = "::" if family == socket.AF_INET6 else "0.0.0.0"
            await sock.bind((target.bindto or any_addr, target.bind_port or 0))
        if target.port is not None:
            await sock.connect((target.address, target.port))
    except BaseException:
        sock.close()
        raise
    return sock


async def open_tcp(target: Target) -> trio.SocketStream:
    return trio.SocketStream(await open_socket(target))


def os_reason(e: OSError) -> str:
    """A stable reason name for a socket error ("connection refused", …)."""
    if e.errno:
        return os.strerror(e.errno).lower()
    return (e.strerror or type(e).__name__).lower()


class TcpChecker:
    """Passes when a TCP connection opens within the timeout (check_tcp.c ``tcp_check_thread``)."""

    async def check(self, target: Target, timeout: float) -> Result:
        with trio.move_on_after(timeout):
            try:
                sock = await open_socket(target)
            except OSError as e:
                return Result.failed(os_reason(e))
            sock.close()
            return Result.passed("connected")
        return Result.failed("timeout connecting")
