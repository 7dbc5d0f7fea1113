"""``python -m cc_collect_async.sim``: the simulator as a stand-alone loopback server.

The first line on stdout is ``URL <base_url>``, then one ``ACCOUNT <userid> <api_key>`` line
per account (the simulator's keys are test credentials, printed so a demo can use them);
:func:`~cc_collect_async.sim.spawn` reads that first line. Runs until SIGINT or SIGTERM and
then exits 0.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .app import Simulator
from .options import parse_args
from .server import serve


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    simulator = Simulator(options.spec, options.config)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # uvicorn runs in a worker thread (see serve), so the main thread owns the signals and a
    # SIGTERM from spawn() ends in a clean shutdown rather than a killed interpreter.
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    with serve(simulator, options.host, options.port) as url:
        print(f"URL {url}", flush=True)
        for userid, api_key in options.config.accounts.items():
            print(f"ACCOUNT {userid} {api_key}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
