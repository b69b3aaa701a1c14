"""DNS_CHECK (keepalived check_dns.c): one UDP query, pass on a matching answer.

keepalived passes when the reply has our id, QR set, RCODE 0 and at least
one answer record (check_dns.c ``dns_recv_thread``).
"""

from __future__ import annotations

import random
import socket
import struct
from dataclasses import dataclass

import trio

from healthcheck.api import Result, Target
from healthcheck.tcp import open_socket, os_reason

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28,
          "RRSIG": 46, "DNSKEY": 48}  # fmt: skip


def encode_query(qid: int, name: str, qtype: str) -> bytes:
    labels = [p for p in name.rstrip(".").split(".") if p]
    qname = b"".join(bytes([len(p)]) + p.encode() for p in labels) + b"\0"
    return (
        struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
        + qname
        + struct.pack("!HH", QTYPES.get(qtype.upper(), 6), 1)
    )


@dataclass(frozen=True)
class DnsChecker:
    query_type: str = "SOA"
    name: str = "."

    async def check(self, target: Target, timeout: float) -> Result:
        qid = random.getrandbits(16)
        try:
            sock = await open_socket(target, socket.SOCK_DGRAM)
        except OSError as e:
            return Result.failed(os_reason(e))
        with sock:
            try:
                await sock.send(encode_query(qid, self.name, self.query_type))
                with trio.move_on_after(timeout):
                    while True:
                        reply = await sock.recv(4096)
                        if len(reply) < 12:
                            continue
                        rid, flags, _qd, an, _ns, _ar = struct.unpack("!HHHHHH", reply[:12])
                        if rid != qid or not flags & 0x8000:
                            continue
                        if flags & 0xF:
                            return Result.failed(f"rcode {flags & 0xF}")
                        if an == 0:
                            return Result.failed("no answer")
                        return Result.passed("answer")
            except OSError as e:
                return Result.failed(os_reason(e))
        return Result.failed("timeout")
