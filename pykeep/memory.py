"""What a running daemon lets go of: the configuration parser, and the C heap's free pages.

An idle VRRP daemon's resident memory is nearly all module code.  The
parser's modules and keyword tables are about 1.3 MiB of it, and nothing
that runs refers to them once a file is loaded: the model and the
diagnostics are modules of their own, which stay.  The daemon lets the
parser go after start-up, before the logging and event-loop imports, which
then reuse its memory.  A reload imports it again (pykeep/ops/view.py
``config_loader``) and keeps it: letting it go once more would free memory
nothing reuses, so the pages would stay resident and each reload would pay
the imports (measured: 26.8 MiB after reloads either way, seed 003).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys

#: The configuration modules whose objects a running daemon holds.
MODEL_MODULES = frozenset({"pykeep.config.model", "pykeep.config.diagnostics"})


def release_parser() -> None:
    """Drop the configuration parser's modules; the caller holds nothing of them.

    ``from pykeep import config`` afterwards imports the parser again, with
    the same model classes.
    """
    gone = [
        name
        for name in sys.modules
        if name == "pykeep.config" or name.startswith("pykeep.config.")
        if name not in MODEL_MODULES
    ]
    for name in gone:
        del sys.modules[name]
    sys.modules["pykeep"].__dict__.pop("config", None)
    gc.collect()  # the modules are cycles of functions and their globals


def return_free_heap() -> None:
    """Give the C heap's free pages back to the kernel once start-up is done.

    Start-up frees a good deal (the parser, the load's temporaries) and
    glibc keeps those pages mapped: ``malloc_trim`` returns about 0.2 MiB of
    a 25 MiB VRRP daemon.  Not glibc: nothing to do.
    """
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None).malloc_trim(0)
