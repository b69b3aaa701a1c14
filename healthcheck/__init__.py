"""pykeep's health checks: keepalived's checkers on trio, usable on their own.

- :mod:`healthcheck.api` — the one-method checker contract (``Target``,
  ``Result``, ``Checker``).
- :mod:`healthcheck.policy` — keepalived's retry/scheduling rules, pure.
- :mod:`healthcheck.scheduler` — the trio shell delivering ``Transition``\\ s.
- :mod:`healthcheck.plugin` — third-party checkers via entry points.
- checkers: ``tcp``, ``http`` (HTTP_GET/SSL_GET), ``misc``, ``udp``, ``ping``,
  ``dns``, ``smtp``, ``file``; and ``genhash``.

Nothing here knows about IPVS; the consumer decides what a transition means.
"""
