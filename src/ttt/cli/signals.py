"""The shutdown signals of a long-running command (services.md §1.4)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any


def stop_on_signals(stop_event: threading.Event, log: logging.Logger, what: str) -> None:
    """The first SIGINT/SIGTERM asks for a clean stop through `stop_event`; a second exits at once."""

    def _stop(signum: int, _frame: Any) -> None:
        if stop_event.is_set():
            os._exit(130)
        log.info("%s: signal %d, stopping", what, signum)
        stop_event.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
