"""What one running central app holds: configuration, store, keyring, tally and metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flask import current_app

from central.config import CentralConfig
from central.db import Store
from central.keyring import Keyring
from central.metrics import Metrics
from central.verify_tally import VerifyTally


@dataclass
class Runtime:
    """The services of one app, reachable from requests through `runtime()`."""

    config: CentralConfig
    store: Store
    keyring: Keyring
    tally: VerifyTally
    metrics: Metrics
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Flush pending work and release connections."""
        self.tally.close()
        self.store.dispose()
        for close in self.closers:
            close()


def runtime() -> Runtime:
    """Return the runtime of the current app."""
    rt: Runtime = current_app.extensions["lineledger"]
    return rt
