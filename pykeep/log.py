"""Logging for the daemon: structlog in front, keepalived's wording behind.

Operators grep keepalived's logs for fixed phrases (``(VI_1) Entering MASTER
STATE``), so the *event* text of every line is exactly keepalived's sentence
and anything extra goes into key=value pairs after it.  Where the lines go
follows keepalived's options (keepalived/core/main.c): ``-l`` console,
otherwise syslog with ``-S`` choosing LOG_LOCAL0..7 (LOG_DAEMON by default);
``--log-json`` is ours, one JSON object per line on the chosen sink.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import time
import types
from collections.abc import Iterator, MutableMapping
from typing import Any


class _OnFirstUse(types.ModuleType):
    """Stands for a module a library names at import but uses only in features we never call.

    The first attribute looked up imports the real module and hands the
    attribute over, so the library's feature still works when someone does
    use it.
    """

    def __getattr__(self, attr: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        real = importlib.import_module(self.__name__)
        self.__dict__.update(real.__dict__)  # later lookups skip this hook
        return getattr(real, attr)


@contextlib.contextmanager
def imported_on_first_use(*names: str) -> Iterator[None]:
    """While importing a library, let its ``import NAME`` bind a stand-in that imports on first use.

    structlog names asyncio (its async loggers, structlog/stdlib.py and
    _native.py), trio names ssl (SSLStream, trio/_ssl.py) and hmac (DTLS
    cookies, trio/_dtls.py, which loads OpenSSL's libcrypto through
    hashlib) at import time, but neither touches them unless those
    features run: about 6 MiB of RSS and 0.1 s of start-up CPU on a busy
    host that a VRRP daemon never uses (bench/bench_vrrp_scale.py).  Only the
    library's own reference is a stand-in: ``sys.modules`` is left as it
    was once the import is done, so anyone else's ``import ssl`` (a
    checker plugin's, SSL_GET's) gets the real module, the same one the
    stand-in forwards to.  A module already imported is left alone.
    """
    standins = {n: _OnFirstUse(n) for n in names if n not in sys.modules}
    sys.modules.update(standins)
    try:
        yield
    finally:
        for name, standin in standins.items():
            if sys.modules.get(name) is standin:
                del sys.modules[name]


#: Packages structlog's console renderer and traceback formatter load when they
#: are installed (structlog/dev.py, structlog/tracebacks.py).  The daemon
#: renders plain lines, and ``rich`` alone is about 16 MiB and 0.2 s of
#: start-up (it comes into a venv with the development tools).  They are
#: hidden while structlog is imported, which then settles for its plain
#: paths, and visible again after: a checker plugin may still import them.
_RENDERER_EXTRAS = ("rich", "better_exceptions", "colorama")

_hidden = [name for name in _RENDERER_EXTRAS if name not in sys.modules]
for _name in _hidden:
    sys.modules[_name] = None  # type: ignore[assignment]  # import raises ImportError
try:
    # uuid (and the platform module it loads) names only the deprecated
    # thread-local wrappers' classes (structlog/threadlocal.py wrap_dict).
    with imported_on_first_use("asyncio", "uuid"):
        import structlog
finally:
    for _name in _hidden:
        if _name in sys.modules and sys.modules[_name] is None:
            del sys.modules[_name]

#: syslog facility codes as ``logging.handlers.SysLogHandler`` numbers them
#: (sys/syslog.h, unshifted).  That module (and the pickle and queue modules
#: it brings, about 0.6 MiB) is imported only when the lines go to syslog:
#: with ``-l`` it never is.
LOG_DAEMON = 3
_LOCAL_FACILITIES = tuple(range(16, 24))  # LOG_LOCAL0 .. LOG_LOCAL7

_detail = False


def _plain(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> str:
    """Render ``EVENT k=v …``: keepalived's sentence first, untouched."""
    text = str(event.pop("event", ""))
    event.pop("level", None)
    event.pop("timestamp", None)
    extra = " ".join(f"{k}={v}" for k, v in event.items())
    return f"{text} {extra}" if extra else text


class _ConsoleFormatter(logging.Formatter):
    """keepalived's console layout: ``Mon Nov 23 11:30:00 2026: message``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(record.created))
        return f"{stamp}: {record.getMessage()}"


def facility_for(option: str | int | None) -> int:
    """Map ``-S N`` (0..7) to LOG_LOCALN as keepalived does; default LOG_DAEMON."""
    if option is None or option == "":
        return LOG_DAEMON
    try:
        n = int(option)
    except (TypeError, ValueError):
        return LOG_DAEMON
    if 0 <= n < len(_LOCAL_FACILITIES):
        return _LOCAL_FACILITIES[n]
    return LOG_DAEMON


def setup(
    *,
    console: bool,
    detail: bool = False,
    facility: str | int | None = None,
    json: bool = False,
    ident: str = "Keepalived_vrrp",
    syslog: bool = True,
) -> None:
    """Configure structlog and the stdlib sink once for the whole process.

    ``syslog`` False is keepalived's ``-G``/``--no-syslog``: without ``-l``
    the lines go nowhere (lib/logger.c log_message skips syslog).
    """
    global _detail
    _detail = detail
    root = logging.getLogger("pykeep")
    for h in list(root.handlers):
        root.removeHandler(h)
    handler: logging.Handler
    if console:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_ConsoleFormatter() if not json else logging.Formatter("%(message)s"))
    elif not syslog:
        handler = logging.NullHandler()
    else:
        from logging.handlers import SysLogHandler

        try:
            handler = SysLogHandler(address="/dev/log", facility=facility_for(facility))
            handler.setFormatter(logging.Formatter(f"{ident}[{os.getpid()}]: %(message)s"))
        except OSError:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(_ConsoleFormatter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if detail else logging.INFO)
    # No line shows where it was logged from, or which thread or process: the
    # records skip the caller's frame walk and those look-ups (the logging
    # HOWTO's "Optimization" settings).  A daemon starting 255 instances logs
    # 255 lines at once; the walk alone was a third of their cost.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root.propagate = False
    renderer: Any = structlog.processors.JSONRenderer() if json else _plain
    processors: list[Any] = [structlog.stdlib.add_log_level]
    if json:
        processors.append(structlog.processors.TimeStamper(fmt="iso", utc=True))
    processors.append(renderer)
    structlog.configure(
        processors=processors,
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def detail_enabled() -> bool:
    """``-D``: keepalived's LOG_DETAIL lines (GARP sends, script results…)."""
    return _detail


def get(name: str = "pykeep") -> Any:
    """A structlog logger under the ``pykeep`` stdlib hierarchy."""
    if not name.startswith("pykeep"):
        name = f"pykeep.{name}"
    return structlog.get_logger(name)
