"""``/proc/net/ip_vs`` read back as entries: the IPVS table as the kernel shows it.

Why here: the rigs that judge a director from outside it (the chaos rows in
the VM, the runtime checker differential) read the table the same way,
without asking either daemon or ipvsadm.
"""

from __future__ import annotations

import ipaddress

#: the value :func:`proc_entries` gives a service line
PRESENT = "+"


def _hex_endpoint(text: str) -> str:
    """``0A630010:1F41`` (as /proc/net/ip_vs shows IPv4 endpoints) → ``10.99.0.16:8001``."""
    addr, _, port = text.partition(":")
    if len(addr) != 8:
        return text  # IPv6 entries are shown in another form; keep them verbatim
    return f"{ipaddress.IPv4Address(int(addr, 16))}:{int(port, 16)}"


def proc_entries(text: str) -> dict[str, str]:
    """``/proc/net/ip_vs`` as {entry: value}: services ``+``, real servers their weight.

    Service keys use ipvsadm's spec ("TCP 10.200.0.1:80", "FWM 1003"); a real
    server's key is its service's key, ``->``, and its address.
    """
    out: dict[str, str] = {}
    service = ""
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] in ("TCP", "UDP", "SCTP") and len(words) >= 2:
            service = f"{words[0]} {_hex_endpoint(words[1])}"
            out[service] = PRESENT
        elif words[0] == "FWM" and len(words) >= 2:
            service = f"FWM {int(words[1], 16)}"
            out[service] = PRESENT
        elif words[0] == "->" and service and len(words) >= 4 and words[1] != "RemoteAddress:Port":
            out[f"{service} -> {_hex_endpoint(words[1])}"] = words[3]
    return out
