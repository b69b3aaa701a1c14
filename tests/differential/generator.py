"""Seeded generator of keepalived.conf files, derived from pykeep's own keyword tables.

Every case is a small, otherwise valid configuration (one VRRP instance on an
interface that exists, one virtual server with one real server) with a few
lines injected into one *focus* block.  The focus keyword walks the whole
keyword tree in turn, so a run of N cases touches every keyword of every
block about N / (number of keywords) times, each time with a different value
class: valid, boundary (0, max, max+1, negative, empty, huge), wrong type,
missing or extra arguments, duplicated lines and blocks, cross references
that do and do not resolve, and the include / ``@conditional`` / ``$VAR``
forms of lib/parser.c.

The same ``(seed, index)`` always gives the same file, so a disagreement is
reproduced by its case name alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from pykeep.config import _ROOT
from pykeep.config.parser import Keyword, Table

# The interfaces the runner creates in its namespace; "nope0" is never created.
INTERFACES = ("dfa0", "dfb0")
MISSING_IFACE = "nope0"
CONFIG_ID = "pk"

# Keywords left out: they make keepalived act on the host even under -t
# (net_namespace enters or creates a namespace; instance/use_pid_dir move
# pid files; config_save_dir makes keepalived -t copy the file there), so
# they are not something a config test can be compared on.
EXCLUDED = frozenset(
    {"net_namespace", "net_namespace_ipvs", "namespace_with_ipsets", "config_save_dir"}
)

# Keywords whose block holds plain lines rather than keywords; the parser
# reads them in its handler, so the table does not say so.
LINE_BLOCKS: dict[str, tuple[str, ...]] = {
    "virtual_ipaddress": ("192.0.2.20/24", "192.0.2.21 dev dfa0", "fe80::1/64", "bogus"),
    "virtual_ipaddress_excluded": ("192.0.2.30/24", "2001:db8::1/64", "999.1.1.1"),
    "virtual_routes": ("198.51.100.0/24 via 192.0.2.1", "default dev dfa0", "x via y"),
    "virtual_rules": ("from 192.0.2.0/24 table 100", "to all table x"),
    "static_ipaddress": ("192.0.2.40/24 dev dfa0", "192.0.2.41/24 dev nope0"),
    "static_routes": ("198.51.100.0/24 via 192.0.2.1 dev dfa0", "bad route"),
    "static_rules": ("from 192.0.2.0/24 table 100", "nonsense"),
    "track_interface": ("dfa0", "dfb0", "nope0", "dfb0 weight 10", "dfb0 weight 300"),
    "track_script": ("chk_a", "chk_missing", "chk_a weight 10", "chk_a weight -300"),
    "track_file": ("tf_a", "tf_missing", "tf_a weight 5"),
    "track_process": ("tp_a", "tp_missing"),
    "track_bfd": ("bfd_a",),
    "unicast_peer": ("192.0.2.2", "192.0.2.3/24", "2001:db8::2", "abc", "192.0.2.4 min_ttl 1"),
    "group": ("VI_1", "VI_missing", "VI_2"),
    "linkbeat_interfaces": ("dfa0", "nope0"),
    "interface_up_down_delays": ("dfa0 1 2", "nope0 1", "dfa0 x"),
    "notification_email": ("root@localhost", "a@b"),
    "interfaces": ("dfa0", "nope0"),
}

# Words that a valid value of a keyword is likely to be, chosen by its name.
_BY_NAME: dict[str, tuple[str, ...]] = {
    "state": ("MASTER", "BACKUP", "FAULT"),
    "lb_algo": ("rr", "wlc", "sh", "mh", "nope"),
    "lvs_sched": ("rr", "wrr", "lc"),
    "lb_kind": ("NAT", "DR", "TUN", "FNAT"),
    "lvs_method": ("NAT", "DR", "TUN"),
    "protocol": ("TCP", "UDP", "SCTP", "ICMP"),
    "auth_type": ("PASS", "AH", "NONE"),
    "auth_pass": ("secret", "longerthan8chars"),
    "ip_family": ("inet", "inet6"),
    "http_protocol": ("1.0", "1.1", "1.0C", "2"),
    "type": ("A", "AAAA", "MX", "BOGUS"),
    "router_id": ("pk_df", "x"),
    "virtual_router_id": ("1", "51", "255"),
    "priority": ("1", "100", "254", "255"),
    "weight": ("1", "10", "-10"),
    "interface": (*INTERFACES, MISSING_IFACE),
    "group": ("VSG1", "VSG_missing"),
    "sorry_server": ("192.0.2.99 80", "192.0.2.99"),
    "virtualhost": ("www.example.com",),
    "path": ("/", "/index.html"),
    "digest": ("d41d8cd98f00b204e9800998ecf8427e", "xyz"),
    "status_code": ("200", "200-299", "600"),
    "smtp_server": ("127.0.0.1", "127.0.0.1 25", "localhost", "**"),
    "vrrp_mcast_group4": ("224.0.0.18", "10.0.0.1"),
    "vrrp_mcast_group6": ("ff02::12", "fe80::1"),
    "script_user": ("root", "root root", "nosuchuser"),
    "user": ("root", "nosuchuser"),
    "version": ("2", "3", "4"),
    "lvs_sync_daemon": ("dfa0 VI_1", "nope0 VI_1", "dfa0 VI_missing"),
    "file": ("/etc/hostname", "/nonexistent/file"),
    "track_file": ("tf_a",),
}

_SCRIPTS = (
    "/bin/true",
    '"/bin/true arg"',
    "/nonexistent/script",
    "true",
    '"/bin/true" root',
    '"/bin/true" nosuchuser',
    "</dev/null",
)
_IPS = ("192.0.2.1", "192.0.2.1/24", "2001:db8::1", "fe80::1", "300.1.1.1", "abc")

# Value classes that apply to any keyword, whatever its type.
_GENERIC = (
    "",
    "0",
    "1",
    "-1",
    "255",
    "256",
    "65535",
    "65536",
    "4294967295",
    "4294967296",
    "99999999999999999999999",
    "1.5",
    "abc",
    "on",
    "off",
    "true",
    "yes",
    "0x10",
    "1e3",
    '""',
    '"a b"',
)


def _valid_for(name: str, rng: random.Random) -> str:
    if name in _BY_NAME:
        return rng.choice(_BY_NAME[name])
    low = name.lower()
    if "notify" in low or "script" in low or low in ("misc_path", "quorum_up", "quorum_down"):
        return rng.choice(_SCRIPTS)
    if "fifo" in low:
        return rng.choice(("/tmp/pk-df.fifo", "/nonexistent/dir/fifo", "/tmp/pk-df.fifo /bin/true"))
    if "interface" in low:
        return rng.choice((*INTERFACES, MISSING_IFACE))
    if low.endswith(("_ip", "_src_ip", "_addr", "address", "bindto", "connect_ip", "mcast_src_ip")):
        return rng.choice(_IPS)
    if "port" in low:
        return rng.choice(("80", "0", "65535", "65536", "-1", "http"))
    if any(s in low for s in ("timeout", "delay", "interval", "loop", "retry", "time")):
        return rng.choice(("1", "3", "0", "0.5", "4294", "4295", "-3", "1e9", "x"))
    if "email" in low:
        return rng.choice(("root@localhost", "a"))
    return rng.choice(("1", "0", "abc", "x y"))


@dataclass
class Case:
    """One generated configuration: its text, any files it includes, and its focus."""

    name: str
    block: str
    keyword: str
    text: str
    sidecars: dict[str, str] = field(default_factory=dict)


def keyword_paths(table: Table = _ROOT) -> list[tuple[tuple[str, ...], str, Keyword]]:
    """Every (block path, keyword) of the tree, in a stable order."""
    out: list[tuple[tuple[str, ...], str, Keyword]] = []

    def walk(t: Table, path: tuple[str, ...], depth: int) -> None:
        for name in sorted(t):
            k = t[name]
            if name in EXCLUDED:
                continue
            out.append((path, name, k))
            if k.sub is not None and depth < 4:
                walk(k.sub, (*path, name), depth + 1)

    walk(table, (), 0)
    return out


_PATHS = keyword_paths()


class Generator:
    """Writes case ``i`` of a seeded sequence."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def case(self, i: int) -> Case:
        rng = random.Random(f"{self.seed}:{i}")
        path, name, k = _PATHS[i % len(_PATHS)]
        g = _Build(rng, path, name, k)
        text = g.render()
        block = "/".join(path) or "(top)"
        return Case(f"s{self.seed}-{i}", block, name, text, g.sidecars)


class _Build:
    """Builds one configuration around a focus keyword."""

    def __init__(self, rng: random.Random, path: tuple[str, ...], name: str, k: Keyword) -> None:
        self.rng = rng
        self.path = path
        self.name = name
        self.k = k
        self.sidecars: dict[str, str] = {}
        self.vars: list[str] = []

    # ---- values -------------------------------------------------------
    def value(self, name: str) -> str:
        r = self.rng.random()
        if r < 0.45:
            v = _valid_for(name, self.rng)
        elif r < 0.85:
            v = self.rng.choice(_GENERIC)
        elif r < 0.92:
            v = f"{_valid_for(name, self.rng)} {self.rng.choice(('extra', '1', 'x y', '{'))}"
        else:
            v = "x" * self.rng.choice((64, 300, 5000))
        if v and self.rng.random() < 0.05:
            var = f"V{len(self.vars)}"
            self.vars.append(f"${var}={v}")
            v = f"${var}"
        elif self.rng.random() < 0.01:
            v = "$UNDEFINED_VAR"
        return v

    def line(self, name: str, k: Keyword, indent: str, depth: int) -> list[str]:
        if name in LINE_BLOCKS and self.rng.random() < 0.75:
            pool = LINE_BLOCKS[name]
            items = self.rng.sample(pool, min(len(pool), self.rng.randint(0, 2)))
            if self.rng.random() < 0.3:  # the inline form some keywords accept
                return [f"{indent}{name} {' '.join(items)}".rstrip()]
            return [f"{indent}{name} {{", *(f"{indent}  {x}" for x in items), f"{indent}}}"]
        if k.sub is not None:
            arg = self.block_arg(name)
            body: list[str] = []
            subs = sorted(k.sub)
            if subs and depth < 4:
                for s in self.rng.sample(subs, min(len(subs), self.rng.randint(0, 3))):
                    body += self.line(s, k.sub[s], indent + "  ", depth + 1)
            head = f"{indent}{name} {arg}".rstrip()
            if self.rng.random() < 0.03:
                return [head, *body]  # missing braces
            return [f"{head} {{", *body, f"{indent}}}"]
        v = self.value(name)
        out = [f"{indent}{name} {v}".rstrip()]
        r = self.rng.random()
        if r < 0.08:
            out.append(f"{indent}{name} {self.value(name)}".rstrip())  # duplicated keyword
        elif r < 0.11:
            out[0] = f"{indent}@{CONFIG_ID} {out[0].lstrip()}"
        elif r < 0.14:
            out[0] = f"{indent}@other {out[0].lstrip()}"
        elif r < 0.16:
            out[0] = f"{indent}@^{CONFIG_ID} {out[0].lstrip()}"
        return out

    def block_arg(self, name: str) -> str:
        return {
            "real_server": self.rng.choice(("192.0.2.12 80", "192.0.2.12", "192.0.2.12 99999")),
            "url": "",
            "host": "",
            "authentication": "",
            "virtual_server": self.rng.choice(("192.0.2.101 80", "fwmark 1", "group VSG1")),
            "virtual_server_group": self.rng.choice(("VSG1", "VSG2", "")),
            "vrrp_instance": self.rng.choice(("VI_2", "VI_1", "")),
            "vrrp_sync_group": self.rng.choice(("G2", "")),
            "vrrp_script": self.rng.choice(("chk_b", "")),
        }.get(name, self.rng.choice(("", "x1")) if name.isupper() or name == "SSL" else "x1")

    def inject(self, where: tuple[str, ...], indent: str) -> list[str]:
        """The lines for the focus block at ``where`` (nothing elsewhere)."""
        if where != self.path:
            return []
        lines = self.line(self.name, self.k, indent, len(self.path))
        # A second, random keyword of the same block now and then.
        table = _table_at(self.path)
        if table and self.rng.random() < 0.4:
            other = self.rng.choice(sorted(table))
            if other not in EXCLUDED:
                lines += self.line(other, table[other], indent, len(self.path))
        if self.rng.random() < 0.06:
            inc = f"inc-{self.rng.randrange(10**9)}.conf"
            self.sidecars[inc] = "\n".join(x.strip() for x in lines) + "\n"
            lines = [f"{indent}include {inc}"]
        return lines

    # ---- skeleton -----------------------------------------------------
    def render(self) -> str:
        r = self.rng
        path = self.path
        out: list[str] = []
        out += self.inject((), "")
        g = ["global_defs {", "  router_id pk_df", *self.inject(("global_defs",), "  "), "}"]
        out += g
        if r.random() < 0.3 or path[:1] == ("vrrp_script",) or "track_script" in self.name:
            out += ["vrrp_script chk_a {", '  script "/bin/true"', "  interval 1"]
            out += [*self.inject(("vrrp_script",), "  "), "}"]
        for blk, head in (
            ("track_file", "track_file tf_a {"),
            ("vrrp_track_file", "vrrp_track_file tf_a {"),
            ("vrrp_track_process", "vrrp_track_process tp_a {"),
            ("garp_group", "garp_group {"),
            ("track_group", "track_group tg_a {"),
            ("SSL", "SSL {"),
        ):
            if path[:1] == (blk,):
                out += [head, *self.inject((blk,), "  "), "}"]
        sync = path[:1] == ("vrrp_sync_group",) or r.random() < 0.1
        if sync:
            out += ["vrrp_sync_group G1 {", "  group {", "    VI_1", "  }"]
            out += [*self.inject(("vrrp_sync_group",), "  "), "}"]
        inst = [
            "vrrp_instance VI_1 {",
            "  state BACKUP",
            f"  interface {INTERFACES[0]}",
            "  virtual_router_id 51",
            "  priority 100",
            "  advert_int 1",
            "  virtual_ipaddress {",
            "    192.0.2.10/24",
            "  }",
        ]
        inst += [*self.inject(("vrrp_instance",), "  "), *self._auth(), "}"]
        out += inst
        if r.random() < 0.05:
            out += inst  # duplicated block
        if path[:1] == ("virtual_server_group",) or r.random() < 0.1:
            out += ["virtual_server_group VSG1 {", "  192.0.2.200 80"]
            out += [*self.inject(("virtual_server_group",), "  "), "}"]
        vs_focus = path[:1] == ("virtual_server",) or r.random() < 0.5
        if vs_focus:
            out += self._vs()
        if self.vars:
            out = self.vars + out
        return "\n".join(out) + "\n"

    def _auth(self) -> list[str]:
        if self.path[:2] != ("vrrp_instance", "authentication"):
            return []
        return ["  authentication {", *self.inject(self.path, "    "), "  }"]

    def _vs(self) -> list[str]:
        p = self.path
        out = [
            "virtual_server 192.0.2.100 80 {",
            "  delay_loop 6",
            "  lb_algo rr",
            "  lb_kind NAT",
            "  protocol TCP",
            *self.inject(("virtual_server",), "  "),
            "  real_server 192.0.2.11 80 {",
            "    weight 1",
            *self.inject(("virtual_server", "real_server"), "    "),
        ]
        checker = p[2] if len(p) > 2 and p[:2] == ("virtual_server", "real_server") else "TCP_CHECK"
        out.append(f"    {checker} {{")
        if checker == "TCP_CHECK":
            out.append("      connect_timeout 3")
        elif checker == "MISC_CHECK" and self.name != "misc_path":
            out.append("      misc_path /bin/true")
        elif checker in ("HTTP_GET", "SSL_GET") and p[3:4] != ("url",):
            # keepalived 2.2.7 crashes on an HTTP checker without a url:
            # keep one so the checker's other keywords are compared.
            out += ["      url {", "        path /", "      }"]
        out += self.inject(("virtual_server", "real_server", checker), "      ")
        if len(p) > 3:
            sub = p[3]
            head = ["        path /"] if sub == "url" and self.name != "path" else []
            out += [f"      {sub} {{", *head, *self.inject(p, "        "), "      }"]
        out += ["    }", "  }", "}"]
        return out


def _table_at(path: tuple[str, ...]) -> Table | None:
    t: Table | None = _ROOT
    for name in path:
        if t is None or name not in t:
            return None
        t = t[name].sub
    return t


def blocks() -> list[str]:
    """Every block the generator focuses on, as reported in the results."""
    return sorted({"/".join(p) or "(top)" for p, _n, _k in _PATHS})


__all__ = ["CONFIG_ID", "INTERFACES", "Case", "Generator", "blocks", "keyword_paths"]
