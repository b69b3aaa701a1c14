"""The operator surfaces: what an operator of a running daemon sees and does.

They sit above every service (VRRP, checkers, IPVS) and below only the daemon
and the CLI: ``view`` is the one snapshot of run-time state, and ``control``,
``ctl``, ``dumps``, ``metrics``, ``status``, ``drain`` and ``sdnotify`` are its
renderings and entry points (the control socket, keepalived's dump files,
``/metrics``, systemd's notify socket).

Two of them are vocabulary rather than surfaces: ``status`` (the snapshot
types, and the latency recorder the checker shell fills in) and ``drain``
(the drain set) import only the config model, so the services below may use
them; the layer contracts in pyproject.toml place them in the ground.
"""
