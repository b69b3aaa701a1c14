"""Drive pykeep/lvs.py the way pykeep/daemon.py does: ``python tests/lvs_runner.py -f CONF``.

Until the daemon's HOOK carries the checker/IPVS service, the tests use this
stand-in: the same open (one error line and exit 1 without IPVS), the same
nursery task, SIGHUP reloads through ``pykeep.config.load``, SIGTERM shuts
down (our IPVS entries are removed) and exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pykeep import config as pkconfig
from pykeep import log as pklog
from pykeep import lvs
from pykeep.daemon import unusable_at_start
from pykeep.ops import unusable_for_reload


async def serve(path: str, service: lvs.LvsService) -> None:
    logger = pklog.get("daemon")
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            logger.info("lvs service started")
            async for signum in signals:
                if signum == signal.SIGHUP:
                    result = pkconfig.load(path)
                    if unusable_for_reload(result):
                        logger.error("Reload failed - keeping the running configuration")
                        continue
                    await service.reload(result.config)
                    continue
                break
            with trio.CancelScope(shield=True):
                await service.shutdown()
            nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-f", "--use-file", dest="use_file", required=True)
    ap.add_argument("-P", "--vrrp", action="store_true")
    ap.add_argument("-C", "--check", action="store_true")
    options = ap.parse_args(argv)
    pklog.setup(console=True)
    logger = pklog.get("daemon")
    result = pkconfig.load(options.use_file)
    if unusable_at_start(result):
        logger.error(f"Stopping: configuration {options.use_file} does not load")
        return 1
    try:
        service = lvs.open_lvs(result.config, options)
    except lvs.LvsUnavailable as exc:
        logger.error(str(exc))
        return 1
    if service is None:
        logger.info("no checker/IPVS work (-P or no virtual servers)")
        return 0
    trio.run(serve, options.use_file, service)
    logger.info("Stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
