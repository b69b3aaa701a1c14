"""The typed, immutable model of a keepalived.conf.

Everything the parser understands ends up here, with keepalived's defaults
already applied (see keepalived.conf(5) and keepalived's ``*_parser.c``).
The daemon's cores (``vrrp/``, ``healthcheck/``, ``ipvs/``) read these
objects and nothing else of the configuration.

Conventions:
- Every object is a frozen dataclass; collections are tuples.
- ``loc`` is where the object was declared, for diagnostics at run time.
  It takes no part in ``==`` and ``hash``: a block that only moved to
  another line says the same thing, so a reload that shifts lines changes
  nothing (keepalived's clear_diff_* compare settings, never positions).
- A value that keepalived inherits from an enclosing block (``retry``,
  ``delay_loop``, ``inhibit_on_failure`` …) is ``None`` here when the block
  did not set it; ``healthcheck`` and ``ipvs`` resolve the inheritance chain
  virtual_server → real_server → checker, so the model stays a faithful
  record of what the file says.
- Times are float seconds, whatever unit the file used.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import _FIELD, MISSING, Field, FrozenInstanceError, dataclass, field, fields  # type: ignore[attr-defined]
from enum import Enum
from operator import attrgetter

# typing stays unimported at run time: start-up counts (pykeep -t).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeAlias, TypeVar, dataclass_transform

    _T = TypeVar("_T")
else:

    def dataclass_transform(**_kwargs: object) -> Callable[[object], object]:
        return lambda f: f


IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface: TypeAlias = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

_set = object.__setattr__
_params: Any = None
# What frozen_dataclass compiles __init__ and maker() from, built on first
# need: the twin class (see builder), and the functions themselves.
_TWINS: dict[type, type] = {}
_MAKERS: dict[type, Callable[..., Any]] = {}


def _twin(cls: type) -> type:
    twin = _TWINS.get(cls)
    if twin is None:
        twin = _TWINS[cls] = type(f"_{cls.__name__}Builder", (), {"__slots__": cls.__slots__})  # type: ignore[attr-defined]
    return twin


def _spec(cls: type) -> tuple[str, dict[str, Any], str, dict[str, Any]]:
    """The parameter list, namespace, field stores and annotations of ``cls``'s ``__init__``."""
    ns: dict[str, Any] = {"_set": _set, "_cls": cls, "_twin": _twin(cls)}
    params: list[str] = []
    for f in fields(cls):
        if f.default is MISSING:
            params.append(f.name)
        else:
            ns[f"_d_{f.name}"] = f.default
            params.append(f"{f.name}=_d_{f.name}")
    names: tuple[str, ...] = cls.__match_args__  # type: ignore[attr-defined]
    body = "".join(f"    self.{n} = {n}\n" for n in names)
    annotations = {f.name: f.type for f in fields(cls)} | {"return": None}
    return ", ".join(params), ns, body, annotations


class _LazyInit:
    """A model class's ``__init__`` until first looked up: then compiled, and put in its place.

    Compiling costs start-up time and memory, and a given configuration uses
    few of the classes (an LVS one, none of the VRRP ones).  Any look-up, by
    a call or by ``inspect``, gets the real function.
    """

    def __get__(self, obj: object, owner: type) -> Any:
        params, ns, body, annotations = _spec(owner)
        # A subclass (with slots of its own, perhaps) gets dataclass's way.
        each = "".join(f"        _set(self, {n!r}, {n})\n" for n in annotations if n != "return")
        exec(
            f"def __init__(self, {params}):\n"
            "    if self.__class__ is not _cls:\n"
            f"{each}"
            "        return\n"
            "    _set(self, '__class__', _twin)\n"
            f"{body}"
            "    self.__class__ = _cls\n",
            ns,
        )
        init = ns["__init__"]
        init.__annotations__ = annotations
        init.__qualname__ = f"{owner.__qualname__}.__init__"
        setattr(owner, "__init__", init)  # noqa: B010 (mypy refuses the assignment)
        return init if obj is None else init.__get__(obj, owner)


def _slotted(cls: type) -> type:
    """What ``dataclass(init=False, repr=False, eq=False, slots=True)`` makes of a model class.

    The same ``Field`` objects in ``__dataclass_fields__`` (so ``fields``,
    ``replace`` and ``asdict`` work), the same slots, ``__match_args__``;
    without dataclass's per-field checks (ClassVar and InitVar annotations,
    mutable defaults), which no model class needs and which cost a share of
    every config test's start.  A model class inherits from no other.
    """
    ns = dict(cls.__dict__)
    flds: dict[str, Any] = {}
    for name, kind in ns.get("__annotations__", {}).items():
        default = ns.pop(name, MISSING)
        f: Any = default if isinstance(default, Field) else field(default=default)
        f.name, f.type, f._field_type = name, kind, _FIELD
        flds[name] = f
    ns.pop("__dict__", None)
    ns.pop("__weakref__", None)
    ns["__slots__"] = tuple(flds)
    ns["__dataclass_fields__"] = flds
    ns["__match_args__"] = tuple(flds)
    new = type(cls)(cls.__name__, cls.__bases__, ns)
    new.__qualname__ = cls.__qualname__
    return new


# The methods every frozen_dataclass shares.  A class keeps only the key
# that ``==`` and ``hash`` compare (``_model_key``): one set of functions,
# not seven closures per class, for some eighty classes a daemon imports.
def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is self.__class__:
        key = self._model_key
        return key(self) == key(other)
    return NotImplemented


def _one_field_key(name: str) -> Callable[[Any], tuple[Any]]:
    return lambda o: (getattr(o, name),)


def _hash(self: Any) -> int:
    return hash(self._model_key(self))


def _repr(self: Any) -> str:
    inner = ", ".join([f"{n}={getattr(self, n)!r}" for n in self.__match_args__])
    return f"{self.__class__.__qualname__}({inner})"


def _setattr(self: Any, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(self: Any) -> list[Any]:
    return [getattr(self, n) for n in self.__match_args__]


def _setstate(self: Any, state: list[Any]) -> None:
    for n, v in zip(self.__match_args__, state, strict=True):
        _set(self, n, v)


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def frozen_dataclass(cls: type[_T]) -> type[_T]:
    """``@dataclass(frozen=True, slots=True)``, made cheap: the model is built on every config test.

    The result is a real frozen dataclass with slots (``fields``,
    ``replace``, ``asdict``, ``__dataclass_params__``, pickling,
    ``FrozenInstanceError``, and the same ``__init__`` signature, ``repr``,
    ``==`` and ``hash``).  But ``dataclass`` compiles six methods per class
    with ``exec``, a large share of pykeep's start-up, and its frozen
    ``__init__`` sets each field with an ``object.__setattr__`` call, a large
    share of a big parse.  Here only ``__init__`` is compiled, when first
    needed (``_LazyInit``); it lends the instance to a twin class with the
    same slots and no ``__setattr__`` guard, stores the fields directly, and
    hands it back.  The other methods are shared by all such classes.
    """
    global _params
    dc: Any = _slotted(cls)
    for f in fields(dc):
        # compare=False (``loc``) leaves a field out of == and hash, as dataclass does.
        plain = f.init and f.repr and f.hash is None
        if not plain or f.default_factory is not MISSING:
            raise TypeError(f"{dc.__name__}.{f.name}: a field option frozen_dataclass lacks")
    dc.__init__ = _LazyInit()
    # The compared fields as a tuple, as dataclass's generated __eq__/__hash__ compare them.
    compared = tuple(f.name for f in fields(dc) if f.compare)
    key: Callable[[Any], Any] = attrgetter(*compared)
    if len(compared) == 1:
        key = _one_field_key(compared[0])
    dc._model_key = staticmethod(key)
    dc.__eq__ = _eq
    dc.__hash__ = _hash
    dc.__repr__ = _repr
    dc.__setattr__ = _setattr
    dc.__delattr__ = _delattr
    dc.__getstate__ = _getstate
    dc.__setstate__ = _setstate
    if _params is None:
        # dataclass's own parameters object, made once on a class of nothing.
        empty: Any = dataclass(frozen=True, slots=True)(type("_Params", (), {}))
        _params = empty.__dataclass_params__
    dc.__dataclass_params__ = _params
    return dc  # type: ignore[no-any-return]


def builder(cls: type) -> type:
    """The twin of a model class: the same slots, no frozen guard.

    For the very hottest loops (a big file's addresses), an instance is made
    as ``maker`` makes it, inline: ``obj = object.__new__(twin)``, every field
    stored, then ``obj.__class__ = cls``.  Each field must be stored.
    """
    return _twin(cls)


def maker(cls: type[_T]) -> Callable[..., _T]:
    """A function that builds ``cls`` as ``cls(...)`` does, for the parser's hottest paths.

    Calling a class runs ``__init__`` through the type machinery, which
    costs as much as setting all the fields; a plain function that makes
    the instance itself costs half.  Same parameters, same object.
    """
    fn = _MAKERS.get(cls)
    if fn is None:
        params, ns, body, _annotations = _spec(cls)
        ns["_new"] = object.__new__
        head = f"def make({params}):\n    self = _new(_twin)\n"
        exec(f"{head}{body}    self.__class__ = _cls\n    return self", ns)
        fn = ns["make"]
        fn.__qualname__ = f"{cls.__qualname__}.__init__"  # the same TypeError texts
        _MAKERS[cls] = fn
    return fn


@frozen_dataclass
class Loc:
    """A place in the configuration: the file and 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


NOWHERE = Loc("<none>", 0)


def _netmask(prefixlen: int) -> ipaddress.IPv4Address:
    """The mask of ``prefixlen`` bits, the one object ipaddress shares among its networks."""
    make: Any = ipaddress.IPv4Network._make_netmask  # type: ignore[attr-defined]
    return make(prefixlen)[0]  # type: ignore[no-any-return]


class _Netmask:
    """``netmask`` of a ``LazyIPv4Interface``: the shared mask object of its prefix length.

    A non-data descriptor, so that ``IPv4Interface.__init__`` (which unpickling
    and copying call) may still store its own in the instance.
    """

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return _netmask(obj._prefixlen)


class _Network:
    """``network`` of a ``LazyIPv4Interface``: built on first use, then kept in the instance."""

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        net = ipaddress.IPv4Network((obj._ip, obj._prefixlen), strict=False)
        obj.__dict__["network"] = net
        return net


class LazyIPv4Interface(ipaddress.IPv4Interface):
    """An ``IPv4Interface`` that builds its network and netmask only when asked.

    A configuration can hold millions of virtual addresses, and a plain
    ``IPv4Interface`` builds an ``IPv4Network``, an ``IPv4Address`` and an
    instance dict for each: about 500 bytes and the larger part of the
    parse time.  This one holds the address and prefix length, and is
    otherwise the same value: equal to and hashing like the plain interface
    of the same text, with the same ``repr``, ``str`` and attributes; it
    copies and pickles through ``IPv4Interface.__init__`` like the plain one.
    The parser makes one without ``__init__``: ``object.__new__`` and the
    two slots, ``_ip`` (the address as an int) and ``_prefixlen``.
    """

    __slots__ = ("_prefixlen",)
    netmask = _Netmask()
    network = _Network()

    def __hash__(self) -> int:
        # IPv4Interface.__hash__'s tuple, without building the network.
        me: Any = self
        mask = int(_netmask(me._prefixlen))
        return hash((me._ip, me._prefixlen, me._ip & mask))

    def __repr__(self) -> str:
        return f"IPv4Interface({str(self)!r})"


@frozen_dataclass
class Script:
    """A command keepalived would run: notify*, vrrp_script, misc_path, quorum_up…

    ``argv`` is the command split the way keepalived splits it (quotes and
    escapes honoured); ``user``/``group`` are the optional run-as identity
    given after the command (``notify_master "/x.sh" nobody``) or by
    ``script_user``.
    """

    argv: tuple[str, ...]
    user: str | None = None
    group: str | None = None
    loc: Loc = field(default=NOWHERE, compare=False)

    @property
    def path(self) -> str:
        return self.argv[0] if self.argv else ""


# --------------------------------------------------------------------------
# global_defs


@frozen_dataclass
class LvsTimeouts:
    """``lvs_timeouts tcp N tcpfin N udp N``: IPVS connection timeouts; None leaves the kernel's."""

    tcp: int | None = None
    tcpfin: int | None = None
    udp: int | None = None


@frozen_dataclass
class LvsSyncDaemon:
    """``lvs_sync_daemon IFACE VRRP_INSTANCE [id N] [maxlen N] [port N] [ttl N] [group IP]``."""

    interface: str
    vrrp_instance: str
    sync_id: int | None = None
    maxlen: int | None = None
    port: int | None = None
    ttl: int | None = None
    group: IPAddress | None = None


@frozen_dataclass
class GlobalDefs:
    """``global_defs { … }``, with keepalived's defaults for what the file leaves out."""

    router_id: str | None = None
    notification_email: tuple[str, ...] = ()
    notification_email_from: str | None = None
    smtp_server: str | None = None
    smtp_connect_timeout: float = 30.0
    enable_script_security: bool = False
    script_user: str | None = None
    script_group: str | None = None
    vrrp_version: int = 2
    vrrp_mcast_group4: ipaddress.IPv4Address = ipaddress.IPv4Address("224.0.0.18")
    vrrp_mcast_group6: ipaddress.IPv6Address = ipaddress.IPv6Address("ff02::12")
    vrrp_garp_interval: float = 0.0
    vrrp_gna_interval: float = 0.0
    vrrp_garp_master_delay: float = 5.0
    vrrp_garp_master_repeat: int = 5
    vrrp_garp_master_refresh: float = 0.0
    vrrp_garp_master_refresh_repeat: int = 1
    vrrp_garp_lower_prio_delay: float | None = None
    vrrp_garp_lower_prio_repeat: int | None = None
    vrrp_skip_check_adv_addr: bool = False
    vrrp_strict: bool = False
    vrrp_check_unicast_src: bool = False
    # vrrp.c vrrp_state_master_rx and VRRP_MS_DOWN_TIMER; strict mode overrides them.
    vrrp_down_timer_adverts: int = 3
    vrrp_lower_prio_no_advert: bool = False
    vrrp_higher_prio_send_advert: bool = False
    # vrrp_garp_extra_if [all] SECONDS: periodic GARPs for VIPs on other interfaces
    vrrp_garp_extra_if: float = 0.0
    vrrp_garp_extra_if_all: bool = False
    vrrp_notify_fifo: Script | None = None
    notify_fifo: Script | None = None
    lvs_notify_fifo: Script | None = None
    notify_fifo_script: Script | None = None  # started with the FIFO's path as last argument
    vrrp_notify_fifo_script: Script | None = None
    startup_script: Script | None = None  # run before the daemon starts (main.c)
    shutdown_script: Script | None = None  # run after it has stopped
    startup_script_timeout: float = 10.0
    shutdown_script_timeout: float = 10.0
    smtp_alert: bool | None = None  # None: alert when notification_email is set
    smtp_alert_vrrp: bool | None = None
    no_email_faults: bool = False  # VRRP alerts skip FAULT (vrrp_notify.c)
    vrrp_notify_priority_changes: bool = False  # MASTER_/BACKUP_PRIORITY FIFO lines
    fifo_write_vrrp_states_on_reload: bool = False  # FIFO lines again at each reload
    vrrp_startup_delay: float = 0.0  # no takeover before it has passed (vrrp_scheduler.c)
    log_unknown_vrids: bool = False  # log adverts for VRIDs no instance runs
    smtp_alert_checker: bool | None = None  # real servers' default (check_data.c)
    no_checker_emails: bool = False  # mail only when a real server's state changes
    vmac_prefix: str | None = None  # unnamed VMACs are PREFIX.VRID (vrrp.c create_vmac_name)
    smtp_helo_name: str | None = None
    nftables: str | None = None  # table name ("keepalived" when given bare)
    nftables_priority: int = -1
    lvs_timeouts: LvsTimeouts = LvsTimeouts()
    lvs_sync_daemon: LvsSyncDaemon | None = None
    lvs_flush: bool = False
    lvs_flush_on_stop: bool = False
    checker_log_all_failures: bool = False
    dynamic_interfaces: bool = False
    # The top-level ``SSL { password ca certificate key }`` block: SSL_GET's
    # client certificate and trusted CAs (check_ssl.c build_ssl_ctx).
    ssl_password: str | None = None
    ssl_ca: str | None = None
    ssl_certificate: str | None = None
    ssl_key: str | None = None
    # pykeep's FULLNAT: the top-level ``local_address_group NAME { … }`` blocks
    # (kept here because every parse pass shares global_defs; ipvs/fnat.py).
    local_address_groups: tuple[LocalAddressGroup, ...] = ()
    # Top-level process keywords (global_parser.c, install_keyword_root):
    # the namespace to enter and the pid-file naming (pykeep/rundir.py).
    net_namespace: str | None = None
    instance: str | None = None
    use_pid_dir: bool = False
    # Keywords keepalived accepts that pykeep records but does not act on
    # (process priorities, rlimits, DBus, SNMP …): keyword -> arguments.
    accepted: tuple[tuple[str, tuple[str, ...]], ...] = ()


# --------------------------------------------------------------------------
# addresses, routes, rules (static_* and virtual_*)


@frozen_dataclass
class IPAddressSpec:
    """One line of virtual_ipaddress / static_ipaddress.

    ``1.2.3.4/24 brd 1.2.3.255 dev eth0 scope global label eth0:1``.
    A bare address gets /32 (/128 for IPv6), as keepalived does.
    """

    address: IPInterface
    dev: str | None = None
    label: str | None = None
    scope: str | None = None
    broadcast: ipaddress.IPv4Address | None = None
    no_track: bool = False
    loc: Loc = field(default=NOWHERE, compare=False)

    @property
    def family(self) -> int:
        return self.address.version


@frozen_dataclass
class RouteSpec:
    """One line of virtual_routes / static_routes, kept close to ``ip route``."""

    dest: IPNetwork | None  # None for "default"
    via: IPAddress | None = None
    src: IPAddress | None = None
    dev: str | None = None
    scope: str | None = None
    table: int | None = None
    metric: int | None = None
    kind: str | None = None  # blackhole, unreachable, prohibit, …
    options: tuple[str, ...] = ()  # the rest of the line, verbatim
    loc: Loc = field(default=NOWHERE, compare=False)


@frozen_dataclass
class RuleSpec:
    """One line of virtual_rules / static_rules, verbatim after ``from``/``to``.

    ``preference`` is the rule's, or the one keepalived gives a rule without
    one: 16384 for the first of its family, then one less each time
    (vrrp_iprule.c ``RULE_START_PRIORITY``, ``next_rule_priority_ipv4/6``).
    """

    words: tuple[str, ...]
    loc: Loc = field(default=NOWHERE, compare=False)
    preference: int | None = None
    family: int = 4


# --------------------------------------------------------------------------
# VRRP


class InitialState(Enum):
    BACKUP = "BACKUP"
    MASTER = "MASTER"


@frozen_dataclass
class VrrpScript:
    """``vrrp_script NAME { script … interval … }`` (vrrp_parser.c defaults)."""

    name: str
    script: Script
    interval: float = 1.0
    timeout: float | None = None  # None: keepalived uses interval
    weight: int = 0
    weight_reverse: bool = False
    rise: int = 1
    fall: int = 1
    user: str | None = None
    group: str | None = None
    init_fail: bool = False
    loc: Loc = field(default=NOWHERE, compare=False)


@frozen_dataclass
class VrrpTrackFile:
    """``vrrp_track_file NAME { file PATH weight N [reverse] init_file … }``."""

    name: str
    file: str
    weight: int = 1
    weight_reverse: bool = False
    init_file: int | None = None  # value written when the file is missing
    loc: Loc = field(default=NOWHERE, compare=False)


@frozen_dataclass
class VrrpTrackProcess:
    """``vrrp_track_process NAME { process PATH [PARAM…] … }`` (vrrp_data.c alloc_vrrp_process).

    ``params`` None means no parameters were given; ``param_match`` is one of
    "none", "exact", "initial", "partial" (track_process.c ``check_params``).
    ``full_command`` matches argv[0] of /proc/PID/cmdline instead of the
    15-character comm.  Delays are seconds; the instance is up while
    ``quorum <= matching processes <= quorum_max``.
    """

    name: str
    process: str
    params: tuple[str, ...] | None = None
    param_match: str = "none"
    full_command: bool = False
    weight: int = 0
    weight_reverse: bool = False
    quorum: int = 1
    quorum_max: int = 2**32 - 1
    terminate_delay: float = 0.0
    fork_delay: float = 0.0
    loc: Loc = field(default=NOWHERE, compare=False)


@frozen_dataclass
class BfdInstance:
    """``bfd_instance NAME { neighbor_ip … }``: one single-hop BFD session.

    Intervals are microseconds, as keepalived keeps them (config values are
    milliseconds with up to 3 decimals); defaults are bfd.h's ``BFD_*_DEFAULT``.
    ``ttl`` 0 means the family's default, settled at the block's end
    (bfd_parser.c ``bfd_end_handler``: 255 for IPv4, 64 for IPv6).
    """

    name: str
    neighbor_ip: IPAddress
    source_ip: IPAddress | None = None
    min_rx_us: int = 10_000
    min_tx_us: int = 10_000
    idle_tx_us: int = 1_000_000
    multiplier: int = 5
    passive: bool = False
    ttl: int = 0
    max_hops: int = 0
    weight: int = 0  # the default weight of track_bfd references
    weight_reverse: bool = False
    loc: Loc = field(default=NOWHERE, compare=False)


@frozen_dataclass
class TrackRef:
    """A reference inside track_interface / track_script / track_file.

    ``weight`` None means "use the tracked object's own weight"
    (track_script, track_file) or "no weight: failure means FAULT"
    (track_interface).
    """

    name: str
    weight: int | None = None
    reverse: bool = False
    loc: Loc = field(default=NOWHERE, compare=False)


@frozen_dataclass
class UnicastPeer:
    """One line of ``unicast_peer { … }``: a peer address and its optional TTL bounds."""

    address: IPAddress
    min_ttl: int | None = None
    max_ttl: int | None = None
    loc: Loc = field(default=NOWHERE, compare=False)


@frozen_dataclass
class Notify:
    """The notify scripts of a vrrp_instance or vrrp_sync_group."""

    master: Script | None = None
    backup: Script | None = None
    fault: Script | None = None
    stop: Script | None = None
    generic: Script | None = None  # ``notify``: called with TYPE NAME STATE PRIO
    master_rx_lower_pri: Script | None = None
    deleted: Script | None = None


@frozen_dataclass
class VrrpInstance:
    """``vrrp_instance NAME { … }`` (vrrp_parser.c defaults; None: the global value applies)."""

    name: str
    virtual_router_id: int
    interface: str | None = None
    initial_state: InitialState = InitialState.BACKUP
    priority: int = 100
    advert_int: float = 1.0
    version: int = 2
    family: int = 4  # 4 or 6, from the virtual addresses (or unicast peers)
    auth_type: str | None = None  # None, "PASS" or "AH"
    auth_pass: str | None = None
    nopreempt: bool = False
    preempt_delay: float = 0.0
    virtual_ipaddress: tuple[IPAddressSpec, ...] = ()
    virtual_ipaddress_excluded: tuple[IPAddressSpec, ...] = ()
    virtual_routes: tuple[RouteSpec, ...] = ()
    virtual_rules: tuple[RuleSpec, ...] = ()
    mcast_src_ip: IPAddress | None = None
    mcast_dst_ip: IPAddress | None = None  # None: global_defs vrrp_mcast_group4/6
    unicast_src_ip: IPAddress | None = None
    unicast_peers: tuple[UnicastPeer, ...] = ()
    unicast_ttl: int = 255
    track_interface: tuple[TrackRef, ...] = ()
    track_script: tuple[TrackRef, ...] = ()
    track_file: tuple[TrackRef, ...] = ()
    track_bfd: tuple[TrackRef, ...] = ()
    track_process: tuple[TrackRef, ...] = ()
    dont_track_primary: bool = False
    notify: Notify = Notify()
    smtp_alert: bool | None = None
    garp_master_delay: float | None = None  # None: global vrrp_garp_master_delay
    garp_master_repeat: int | None = None
    garp_master_refresh: float | None = None
    garp_master_refresh_repeat: int | None = None
    garp_lower_prio_delay: float | None = None
    garp_lower_prio_repeat: int | None = None
    skip_check_adv_addr: bool | None = None  # None: global vrrp_skip_check_adv_addr
    strict_mode: bool | None = None
    check_unicast_src: bool | None = None
    down_timer_adverts: int | None = None  # None: global vrrp_down_timer_adverts
    lower_prio_no_advert: bool | None = None  # None: global vrrp_lower_prio_no_advert
    higher_prio_send_advert: bool | None = None
    unicast_fault_no_peer: bool = False  # FAULT rather than multicast without peers
    garp_extra_if: float | None = None  # None: global vrrp_garp_extra_if (and its 'all')
    garp_extra_if_all: bool = False
    use_vmac: str | None = None  # the vmac interface name, "" for the default
    vmac_mac: str | None = None  # use_vmac's own MAC (vrrp_vmac_handler); None: the RFC's
    use_ipvlan: str | None = None  # the ipvlan's name, "" for the default (vrrp_ipvlan_handler)
    ipvlan_flags: int = 0  # IFLA_IPVLAN_FLAGS: 0 bridge, 1 private, 2 vepa
    ipvlan_address: str | None = None  # "ADDR/PREFIX" the ipvlan gets (vrrp/vmac.py)
    # None: the sync group's, else global vrrp_notify_priority_changes
    notify_priority_changes: bool | None = None
    promote_secondaries: bool = False  # on the interface while running (vrrp/ifconfig.py)
    vmac_xmit_base: bool = False  # adverts on the base interface, VIPs on the vmac
    accept: bool | None = None
    v3_checksum_as_v2: bool = False
    lvs_sync_daemon_interface: str | None = None
    loc: Loc = field(default=NOWHERE, compare=False)

    @property
    def is_unicast(self) -> bool:
        return bool(self.unicast_peers)


@frozen_dataclass
class VrrpSyncGroup:
    """``vrrp_sync_group NAME { group { … } … }``: instances that change state together."""

    name: str
    group: tuple[str, ...]
    notify: Notify = Notify()
    track_interface: tuple[TrackRef, ...] = ()
    track_script: tuple[TrackRef, ...] = ()
    track_file: tuple[TrackRef, ...] = ()
    track_bfd: tuple[TrackRef, ...] = ()
    track_process: tuple[TrackRef, ...] = ()
    smtp_alert: bool | None = None
    notify_priority_changes: bool | None = None  # None: global vrrp_notify_priority_changes
    global_tracking: bool = False
    sync_group_tracking_weight: bool = False
    loc: Loc = field(default=NOWHERE, compare=False)


# --------------------------------------------------------------------------
# checkers


@frozen_dataclass
class CheckerCommon:
    """Options every checker shares (check_api.c ``install_checker_common_keywords``).

    ``None`` means inherited from the real_server / virtual_server.
    """

    connect_ip: IPAddress | None = None
    connect_port: int | None = None
    bindto: IPAddress | None = None
    bind_port: int | None = None
    bind_if: str | None = None
    connect_timeout: float | None = None
    fwmark: int | None = None
    warmup: float | None = None
    delay_loop: float | None = None
    retry: int | None = None
    delay_before_retry: float | None = None
    alpha: bool | None = None
    log_all_failures: bool | None = None
    loc: Loc = field(default=NOWHERE, compare=False)


@frozen_dataclass
class StatusRange:
    """An inclusive range of HTTP status codes (``status_code 200-299 301``)."""

    low: int
    high: int

    def __contains__(self, code: object) -> bool:
        return isinstance(code, int) and self.low <= code <= self.high


@frozen_dataclass
class HttpUrl:
    """One ``url { … }`` block of HTTP_GET / SSL_GET."""

    path: str
    digest: str | None = None  # lower-case hex MD5
    status_codes: tuple[StatusRange, ...] = ()  # empty: 200-299
    regex: str | None = None
    regex_no_match: bool = False
    regex_options: tuple[str, ...] = ()
    virtualhost: str | None = None
    loc: Loc = field(default=NOWHERE, compare=False)


@frozen_dataclass
class TcpCheck:
    """TCP_CHECK: a connect to the real server (or connect_ip/connect_port)."""

    common: CheckerCommon = CheckerCommon()
    keyword: str = "TCP_CHECK"


@frozen_dataclass
class HttpCheck:
    """HTTP_GET (``ssl`` False) and SSL_GET (``ssl`` True)."""

    common: CheckerCommon = CheckerCommon()
    ssl: bool = False
    urls: tuple[HttpUrl, ...] = ()
    http_protocol: str = "1.0"  # "1.0", "1.0C" (close), "1.1"
    virtualhost: str | None = None
    enable_sni: bool = False  # check_http.c: off unless ``enable_sni`` is given
    sni_name: str | None = None
    fast_recovery: bool = False
    keyword: str = "HTTP_GET"


@frozen_dataclass
class MiscCheck:
    """MISC_CHECK: a script whose exit code says up or down (or the weight, if dynamic)."""

    common: CheckerCommon = CheckerCommon()
    misc_path: Script | None = None
    misc_timeout: float | None = None  # None: delay_loop
    misc_dynamic: bool = False
    user: str | None = None
    group: str | None = None
    keyword: str = "MISC_CHECK"


@frozen_dataclass
class SmtpCheck:
    """SMTP_CHECK: an SMTP greeting and HELO exchange."""

    common: CheckerCommon = CheckerCommon()
    helo_name: str | None = None
    keyword: str = "SMTP_CHECK"


@frozen_dataclass
class DnsCheck:
    """DNS_CHECK: a query of ``type`` for ``name`` that must be answered."""

    common: CheckerCommon = CheckerCommon()
    query_type: str = "SOA"
    name: str = "."
    keyword: str = "DNS_CHECK"


@frozen_dataclass
class UdpCheck:
    """UDP_CHECK: a datagram sent, and optionally a reply required and matched."""

    common: CheckerCommon = CheckerCommon()
    payload: bytes = b""
    require_reply: bool = False
    reply_min_length: int | None = None
    reply_max_length: int | None = None
    reply_data: bytes | None = None
    keyword: str = "UDP_CHECK"


@frozen_dataclass
class PingCheck:
    """PING_CHECK: an ICMP echo request and reply."""

    common: CheckerCommon = CheckerCommon()
    keyword: str = "PING_CHECK"


@frozen_dataclass
class FileCheck:
    """FILE_CHECK { track_file NAME weight N [reverse] }."""

    common: CheckerCommon = CheckerCommon()
    track_file: str = ""
    weight: int | None = None
    weight_reverse: bool = False
    keyword: str = "FILE_CHECK"


@frozen_dataclass
class PluginCheck:
    """A checker block served by a third-party plugin (entry point ``pykeep.checkers``).

    ``options`` is whatever the plugin's own ``parse`` returned.
    """

    keyword: str
    options: object = None
    common: CheckerCommon = CheckerCommon()


Checker: TypeAlias = (
    TcpCheck
    | HttpCheck
    | MiscCheck
    | SmtpCheck
    | DnsCheck
    | UdpCheck
    | PingCheck
    | FileCheck
    | PluginCheck
)


# --------------------------------------------------------------------------
# LVS


class LbKind(Enum):
    NAT = "NAT"
    DR = "DR"
    TUN = "TUN"
    # pykeep's FULLNAT: IPVS NAT plus nftables source NAT onto a local
    # address group (ipvs/fnat.py); unknown to mainline keepalived.
    FNAT = "FNAT"


class Protocol(Enum):
    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


@frozen_dataclass
class Tunnel:
    """``lb_kind TUN`` options: ``tun_type ipip|gue|gre``, ``tun_port``, checksum flags."""

    tun_type: str = "ipip"
    port: int | None = None
    nocsum: bool = False
    csum: bool = False
    remcsum: bool = False


@frozen_dataclass
class RealServer:
    """``real_server IP PORT { … }``; None fields inherit from the virtual_server."""

    address: IPAddress
    port: int | None  # None for fwmark services
    weight: int = 1
    lb_kind: LbKind | None = None  # per-server lvs_method; None: the virtual_server's
    tunnel: Tunnel | None = None
    inhibit_on_failure: bool | None = None
    uthreshold: int = 0
    lthreshold: int = 0
    alpha: bool | None = None
    delay_loop: float | None = None
    retry: int | None = None
    delay_before_retry: float | None = None
    warmup: float | None = None
    connect_timeout: float | None = None
    notify_up: Script | None = None
    notify_down: Script | None = None
    smtp_alert: bool | None = None
    virtualhost: str | None = None
    checkers: tuple[Checker, ...] = ()
    loc: Loc = field(default=NOWHERE, compare=False)


@frozen_dataclass
class VsgEntry:
    """One line of a virtual_server_group: an address range and port, or a fwmark.

    ``10.0.0.1-10 80`` has ``address`` 10.0.0.1 and ``last`` 10.0.0.10;
    a single address has ``last == address``.
    """

    address: IPAddress | None = None
    last: IPAddress | None = None
    port: int | None = None
    fwmark: int | None = None
    loc: Loc = field(default=NOWHERE, compare=False)


@frozen_dataclass
class LocalAddressGroup:
    """``local_address_group NAME { IP | IP-LAST … }``: FULLNAT's source addresses.

    A block of the Alibaba FULLNAT fork; pykeep realises it as the addresses
    nftables source-NATs director-to-real-server traffic onto (ipvs/fnat.py).
    """

    name: str
    addresses: tuple[IPAddress, ...] = ()
    loc: Loc = field(default=NOWHERE, compare=False)


@frozen_dataclass
class VirtualServerGroup:
    """``virtual_server_group NAME { … }``: the addresses a ``virtual_server group NAME`` serves."""

    name: str
    entries: tuple[VsgEntry, ...] = ()
    loc: Loc = field(default=NOWHERE, compare=False)


@frozen_dataclass
class VirtualServer:
    """``virtual_server IP PORT``, ``virtual_server fwmark N`` or ``virtual_server group NAME``.

    Exactly one of (address, port), fwmark and group is set.
    """

    address: IPAddress | None = None
    port: int | None = None
    fwmark: int | None = None
    group: str | None = None
    family: int = 4
    protocol: Protocol = Protocol.TCP
    lb_algo: str = "wlc"
    lb_kind: LbKind = LbKind.NAT
    tunnel: Tunnel | None = None
    sched_flags: tuple[str, ...] = ()  # flag-1..3, sh-port, sh-fallback, mh-port, mh-fallback
    ops: bool = False
    persistence_timeout: int | None = None  # bare keyword: 360
    persistence_granularity: ipaddress.IPv4Address | int | None = None
    persistence_engine: str | None = None  # IPVS persistence engine ("sip"), persistent only
    virtualhost: str | None = None
    delay_loop: float = 60.0
    warmup: float | None = None
    retry: int | None = None
    delay_before_retry: float | None = None
    connect_timeout: float | None = None
    alpha: bool = False
    omega: bool = False
    quorum: int = 1
    hysteresis: int = 0
    quorum_up: Script | None = None
    quorum_down: Script | None = None
    # pykeep extensions (not keepalived keywords): FULLNAT's local address
    # group, SYN proxy, and the VIPs on ``lo`` while quorum is up (cluster mode).
    laddr_group_name: str | None = None
    syn_proxy: bool = False
    announce_on_lo: bool = False
    inhibit_on_failure: bool = False
    ha_suspend: bool = False
    sorry_server: RealServer | None = None
    sorry_server_inhibit: bool = False
    real_servers: tuple[RealServer, ...] = ()
    smtp_alert: bool | None = None
    loc: Loc = field(default=NOWHERE, compare=False)

    @property
    def key(self) -> str:
        """The name keepalived logs a virtual server by: ``[IP]:proto:PORT``, ``FWM N``, group."""
        if self.group is not None:
            return f"group {self.group}"
        if self.fwmark is not None:
            return f"FWM {self.fwmark}"
        return f"[{self.address}]:{self.protocol.value.lower()}:{self.port}"


# --------------------------------------------------------------------------
# the whole file


@frozen_dataclass
class Config:
    """The whole configuration: every section, and every file read (includes too)."""

    global_defs: GlobalDefs = GlobalDefs()
    static_ipaddress: tuple[IPAddressSpec, ...] = ()
    static_routes: tuple[RouteSpec, ...] = ()
    static_rules: tuple[RuleSpec, ...] = ()
    vrrp_scripts: tuple[VrrpScript, ...] = ()
    vrrp_track_files: tuple[VrrpTrackFile, ...] = ()
    vrrp_track_processes: tuple[VrrpTrackProcess, ...] = ()
    bfd_instances: tuple[BfdInstance, ...] = ()
    vrrp_sync_groups: tuple[VrrpSyncGroup, ...] = ()
    vrrp_instances: tuple[VrrpInstance, ...] = ()
    virtual_server_groups: tuple[VirtualServerGroup, ...] = ()
    virtual_servers: tuple[VirtualServer, ...] = ()
    files: tuple[str, ...] = field(default=())  # every file read, includes too

    def instance(self, name: str) -> VrrpInstance | None:
        return next((i for i in self.vrrp_instances if i.name == name), None)

    def script(self, name: str) -> VrrpScript | None:
        return next((s for s in self.vrrp_scripts if s.name == name), None)

    def vsg(self, name: str) -> VirtualServerGroup | None:
        return next((g for g in self.virtual_server_groups if g.name == name), None)
