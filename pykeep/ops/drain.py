"""The set of drained (virtual server, real server) pairs.

``pykeep ctl drain VS RS`` sets a real server's IPVS weight to 0 so that it
gets no new connections while a deploy restarts it, without editing the
configuration (seed 000 §3).  The drain is operator state, not config: it
is kept across reloads (the pairs are matched against each new
configuration by address, not by object identity) and across restarts
through a small JSON state file, until ``undrain``.

Pure: parsing, matching and (de)serialising.  The daemon owns the one
instance, applies ``effective_weight`` when it builds the IPVS desired
state, and calls ``save`` after each change.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tempfile
from dataclasses import fields
from pathlib import Path

from pykeep.config.model import Config, IPAddress, RealServer, VirtualServer, frozen_dataclass

DEFAULT_STATE_FILE = Path("/var/lib/pykeep/drain.json")
_PROTOCOLS = ("tcp", "udp", "sctp")


class DrainSpecError(ValueError):
    """An operator-typed VS or RS that does not parse; the message is one line."""


class DrainStateError(ValueError):
    """The state file exists but cannot be read back."""


def _parse_host_port(text: str, what: str, *, port_required: bool) -> tuple[IPAddress, int | None]:
    """``IP``, ``IP:PORT``, ``[IPv6]`` or ``[IPv6]:PORT``; a bare IPv6 has no port."""
    host, port = text, None
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", text)
    if m:
        host, port = m.group(1), m.group(2)
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise DrainSpecError(f"{what} {text!r}: {host!r} is not an IP address") from None
    if port is None:
        if port_required:
            raise DrainSpecError(f"{what} {text!r}: expected IP:PORT")
        return addr, None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise DrainSpecError(f"{what} {text!r}: port {port!r} is not 1-65535")
    return addr, int(port)


def _host(addr: IPAddress) -> str:
    return f"[{addr}]" if addr.version == 6 else str(addr)


@frozen_dataclass
class VsSpec:
    """A virtual server as the operator names it; ``protocol`` None matches any."""

    kind: str  # "addr", "fwmark" or "group"
    address: str = ""
    port: int = 0
    protocol: str = ""
    fwmark: int = 0
    group: str = ""

    @classmethod
    def parse(cls, text: str) -> VsSpec:
        """``IP:PORT[/tcp|udp|sctp]``, ``[IP]:tcp:PORT`` (keepalived), ``fwmark N``, ``group G``."""
        t = text.strip()
        m = re.fullmatch(r"(?i)(?:fwmark|fwm)[\s:=]*(\d+)", t)
        if m:
            return cls("fwmark", fwmark=int(m.group(1)))
        m = re.fullmatch(r"(?i)group[\s:=]+(\S+)", t)
        if m:
            return cls("group", group=m.group(1))
        m = re.fullmatch(r"\[([^\]]+)\]:(tcp|udp|sctp):(\d+)", t, re.IGNORECASE)
        if m:
            t = f"[{m.group(1)}]:{m.group(3)}/{m.group(2)}"
        proto = ""
        if "/" in t:
            t, proto = t.rsplit("/", 1)
            proto = proto.lower()
            if proto not in _PROTOCOLS:
                raise DrainSpecError(f"virtual server {text!r}: unknown protocol {proto!r}")
        addr, port = _parse_host_port(t, "virtual server", port_required=True)
        assert port is not None
        return cls("addr", address=str(addr), port=port, protocol=proto)

    def __str__(self) -> str:
        if self.kind == "fwmark":
            return f"fwmark {self.fwmark}"
        if self.kind == "group":
            return f"group {self.group}"
        text = f"{_host(ipaddress.ip_address(self.address))}:{self.port}"
        return f"{text}/{self.protocol}" if self.protocol else text

    def matches(self, vs: VirtualServer) -> bool:
        if self.kind == "fwmark":
            return vs.fwmark == self.fwmark and vs.group is None
        if self.kind == "group":
            return vs.group == self.group
        return (
            vs.address is not None
            and vs.address == ipaddress.ip_address(self.address)
            and vs.port == self.port
            and (not self.protocol or vs.protocol.value.lower() == self.protocol)
        )


@frozen_dataclass
class RsSpec:
    """A real server as the operator names it; no port matches every port of the address."""

    address: str
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> RsSpec:
        addr, port = _parse_host_port(text.strip(), "real server", port_required=False)
        return cls(str(addr), port)

    def __str__(self) -> str:
        host = _host(ipaddress.ip_address(self.address))
        return host if self.port is None else f"{host}:{self.port}"

    def matches(self, rs: RealServer) -> bool:
        return rs.address == ipaddress.ip_address(self.address) and (
            self.port is None or rs.port == self.port
        )


def _order(pair: tuple[VsSpec, RsSpec]) -> tuple[tuple[object, ...], ...]:
    """A pair's place in the state file: each spec's fields in turn, as ``order=True`` sorts."""
    return tuple(tuple(getattr(x, f.name) for f in fields(x)) for x in pair)


@frozen_dataclass
class DrainSet:
    """Immutable; ``add``/``remove`` return a new set so a failed save changes nothing."""

    pairs: frozenset[tuple[VsSpec, RsSpec]] = frozenset()

    def add(self, vs: str, rs: str) -> DrainSet:
        return DrainSet(self.pairs | {(VsSpec.parse(vs), RsSpec.parse(rs))})

    def remove(self, vs: str, rs: str) -> DrainSet:
        return DrainSet(self.pairs - {(VsSpec.parse(vs), RsSpec.parse(rs))})

    def __contains__(self, pair: object) -> bool:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            return False
        vs, rs = pair
        if isinstance(vs, str) and isinstance(rs, str):
            return (VsSpec.parse(vs), RsSpec.parse(rs)) in self.pairs
        return pair in self.pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def is_drained(self, vs: VirtualServer, rs: RealServer) -> bool:
        return any(v.matches(vs) and r.matches(rs) for v, r in self.pairs)

    def effective_weight(self, vs: VirtualServer, rs: RealServer, weight: int) -> int:
        """The weight IPVS should get: 0 while drained, else what health checks decided."""
        return 0 if self.is_drained(vs, rs) else weight

    def unmatched(self, config: Config) -> list[tuple[str, str]]:
        """Pairs that name nothing in ``config``: kept (a reload may bring them back), but shown."""
        out = []
        for v, r in sorted(self.pairs, key=_order):
            hit = any(
                v.matches(vs) and any(r.matches(rs) for rs in vs.real_servers)
                for vs in config.virtual_servers
            )
            if not hit:
                out.append((str(v), str(r)))
        return out

    def to_json(self) -> str:
        items = [{"vs": str(v), "rs": str(r)} for v, r in sorted(self.pairs, key=_order)]
        return json.dumps({"version": 1, "drained": items}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "<drain state>") -> DrainSet:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DrainStateError(f"{source}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict) or not isinstance(data.get("drained"), list):
            raise DrainStateError(f"{source}: expected {{'drained': [...]}}")
        pairs = set()
        for n, item in enumerate(data["drained"]):
            if not (isinstance(item, dict) and isinstance(item.get("vs"), str)):
                raise DrainStateError(f"{source}: entry {n} needs string 'vs' and 'rs'")
            if not isinstance(item.get("rs"), str):
                raise DrainStateError(f"{source}: entry {n} needs string 'vs' and 'rs'")
            try:
                pairs.add((VsSpec.parse(item["vs"]), RsSpec.parse(item["rs"])))
            except DrainSpecError as exc:
                raise DrainStateError(f"{source}: entry {n}: {exc}") from None
        return cls(frozenset(pairs))


def resolve(config: Config, vs: str, rs: str) -> list[tuple[VirtualServer, RealServer]]:
    """The configured (virtual server, real server) pairs an operator's VS RS names.

    The control handler rejects a drain that resolves to nothing, so a typo
    does not silently leave the real server in service.
    """
    v, r = VsSpec.parse(vs), RsSpec.parse(rs)
    return [
        (vsrv, rsrv)
        for vsrv in config.virtual_servers
        if v.matches(vsrv)
        for rsrv in vsrv.real_servers
        if r.matches(rsrv)
    ]


def load(path: Path = DEFAULT_STATE_FILE) -> DrainSet:
    """The drain set saved by the previous run; empty when there is no file yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DrainSet()
    except OSError as exc:
        raise DrainStateError(f"{path}: {exc.strerror}") from None
    return DrainSet.from_json(text, str(path))


def save(drain: DrainSet, path: Path = DEFAULT_STATE_FILE) -> None:
    """Write the set durably (temp file, fsync, rename), mode 0600, creating the directory."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fp:
            fp.write(drain.to_json())
            fp.flush()
            os.fsync(fp.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
