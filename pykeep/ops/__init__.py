"""The operator surfaces: what an operator of a running daemon sees and does.

They sit above every service (VRRP, checkers, IPVS) and below only the daemon
and the CLI: ``view`` is the one snapshot of run-time state, and ``control``,
``ctl``, ``dumps``, ``metrics``, ``status``, ``drain`` and ``sdnotify`` are its
renderings and entry points (the control socket, keepalived's dump files,
``/metrics``, systemd's notify socket).
"""
