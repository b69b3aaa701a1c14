"""Shared pytest fixtures: the namespace rig and the virtme-ng VM.

Why here: every network test in the suite builds on the same rig, and every one of
them must leave nothing behind.  The ``rig`` fixture is a factory whose rigs are
always torn down, even when the test fails.  Marked tests never skip silently:
a ``netns`` test on a machine where ``ip netns`` does not work, or a ``vm`` test
without virtme-ng or a kernel image, *fails* with the reason, because a skipped
test is not a pass (CONTRIBUTING.md).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import pytest

from sim import netns
from sim.netns import Rig
from tests import vmshare


@functools.cache
def _netns_problem() -> str | None:
    return netns.check_usable()


@functools.cache
def _vm_problem() -> str | None:
    from sim import vm

    return vm.check_usable()


def pytest_sessionstart(session: pytest.Session) -> None:
    # Rigs left by a crashed earlier run (owner process dead).  Live rigs of other
    # concurrently running test processes are not touched.
    import contextlib
    import os

    if os.geteuid() == 0:
        with contextlib.suppress(Exception):
            netns.down(stale_only=True)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("netns"):
        problem = _netns_problem()
        if problem:
            pytest.fail(f"netns test cannot run: {problem}", pytrace=False)
    if item.get_closest_marker("vm"):
        problem = _vm_problem()
        if problem:
            pytest.fail(f"vm test cannot run: {problem}", pytrace=False)


RigFactory = Callable[..., Rig]


@pytest.fixture
def rig() -> Iterator[RigFactory]:
    """Factory: ``rig()`` -> empty :class:`sim.netns.Rig`; ``rig(topology)`` -> built Lab.

    Every rig (and every process started through it) is deleted at teardown.
    """
    made: list[Rig] = []

    def make(topology: object = None, *, hint: str = "t") -> Rig:
        name = netns.unique_rig_name(hint)
        if topology is None:
            made.append(Rig(name))
            return made[-1]
        from sim.topology import Lab, Topology

        if not isinstance(topology, Topology):
            raise TypeError(f"rig() wants a sim.topology.Topology, got {topology!r}")
        lab = Lab(topology, name=name)
        made.append(lab)
        return lab.build()

    try:
        yield make
    finally:
        errors = []
        for r in reversed(made):
            try:
                r.close()
            except Exception as exc:
                errors.append(f"{r.name}: {exc}")
        if errors:
            pytest.fail("rig teardown failed: " + "; ".join(errors), pytrace=False)


@pytest.fixture(scope="session")
def shared_vm(tmp_path_factory: pytest.TempPathFactory) -> vmshare.SharedRun:
    """The one VM boot of the registered parts (tests/vmshare.py)."""
    return vmshare.run(tmp_path_factory.mktemp("vm-shared"))
