"""The line PC's clock against central's: measured at every contact, used to correct time.

Every answer of central carries its time (`X-LineLedger-Time`). The agent takes the middle of
the request's send and receive times as the moment central stamped it, so one reading is
good to half its round trip: offset = central's time - midpoint.

Corrected time is central's time at the last reading plus the time elapsed since then on the
PC's boot clock (Linux `CLOCK_BOOTTIME`: it counts suspend and is never stepped). So when
someone sets the wall clock right (or wrong) after a reading, corrected time does not jump
with it, and the offset the agent shows follows the wall clock at once, without waiting for
the next contact. After a reboot (another boot id) the boot clock restarted: corrected time
falls back to wall clock + the last offset, until the next contact.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from protocol.errors import ProtocolError
from protocol.timefmt import parse_ts

TIME_HEADER = "X-LineLedger-Time"
MAX_RTT_SECONDS = 10.0  # a slower round trip tells too little about the offset
OK = "ok"
WARN = "warn"
REFUSE = "refuse"
UNKNOWN = "unknown"
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _since_boot() -> float | None:
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    return None if clock is None else time.clock_gettime(clock)


def _boot_id() -> str | None:
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip()[:64] or None
    except OSError:
        return None


@dataclass(frozen=True)
class ClockSources:
    """Where the clock readings come from (tests pass their own)."""

    wall: Callable[[], float] = time.time
    since_boot: Callable[[], float | None] = _since_boot
    boot_id: Callable[[], str | None] = _boot_id


SYSTEM = ClockSources()  # read at call time, so a test can put a PC's clock off


def system() -> ClockSources:
    """Return the clock sources in use (the system's, unless a test replaced them)."""
    return SYSTEM


@dataclass(frozen=True)
class Instant:
    """One moment on the wall clock and on the boot clock."""

    wall: float
    boot: float | None

    @classmethod
    def take(cls, sources: ClockSources | None = None) -> Instant:
        """Read both clocks now."""
        sources = sources or system()
        return cls(sources.wall(), sources.since_boot())


@dataclass(frozen=True)
class ClockReading:
    """One measurement of the offset between this PC's clock and central's."""

    offset: float  # seconds to add to the wall clock to get central's time
    rtt: float  # the request's round trip, seconds
    central_at: float  # central's time (unix seconds) at the midpoint
    wall_at: float  # the wall clock at the midpoint
    boot_at: float | None  # the boot clock at the midpoint
    boot_id: str | None

    def to_json(self) -> str:
        """Return the reading as stored in the agent's meta table."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> ClockReading | None:
        """Read a stored reading; None if absent or unreadable."""
        if not text:
            return None
        try:
            o = json.loads(text)
            return cls(
                offset=float(o["offset"]),
                rtt=float(o["rtt"]),
                central_at=float(o["central_at"]),
                wall_at=float(o["wall_at"]),
                boot_at=None if o.get("boot_at") is None else float(o["boot_at"]),
                boot_id=None if o.get("boot_id") is None else str(o["boot_id"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


def measure(
    stamp: object, sent: Instant, received: Instant, boot_id: str | None
) -> ClockReading | None:
    """Return the reading a central time stamp gives, or None if it tells nothing reliable."""
    try:
        central = parse_ts(stamp).timestamp()
    except ProtocolError:
        return None  # a missing or malformed header is no reading, never an error
    if sent.boot is not None and received.boot is not None:
        rtt = received.boot - sent.boot
        boot_at: float | None = (sent.boot + received.boot) / 2
    else:
        rtt, boot_at = received.wall - sent.wall, None
    if not 0 <= rtt <= MAX_RTT_SECONDS:
        return None
    wall_at = (sent.wall + received.wall) / 2
    return ClockReading(central - wall_at, rtt, central, wall_at, boot_at, boot_id)


def state_of(offset: float | None, warn_seconds: float, limit_seconds: float) -> str:
    """Return ok, warn, refuse or unknown for an offset."""
    if offset is None:
        return UNKNOWN
    size = abs(offset)
    if size > limit_seconds:
        return REFUSE
    if size > warn_seconds:
        return WARN
    return OK


def describe(offset: float) -> str:
    """Return an offset as a person reads it: '2 h 5 min behind central'."""
    size = abs(offset)
    if size >= 3600 - 30:
        minutes = round(size / 60)
        text = f"{minutes // 60} h {minutes % 60} min"
    elif size >= 60:
        text = f"{int(size // 60)} min {int(size % 60)} s"
    else:
        text = f"{size:.1f} s"
    return f"{text} {'behind' if offset > 0 else 'ahead of'} central"


class Clock:
    """Corrected time for one agent; cheap to read, updated by every new reading."""

    def __init__(self, reading: ClockReading | None, sources: ClockSources | None = None) -> None:
        self.sources = sources or system()
        self._boot_id = self.sources.boot_id()
        self._lock = threading.Lock()
        # (reading, central time at boot clock 0 for this boot, offset): swapped as one value
        # so a reader in another thread never sees half of an update.
        self._state: tuple[ClockReading | None, float | None, float | None] = (None, None, None)
        self._set(reading)

    def _set(self, reading: ClockReading | None) -> None:
        base = None
        if (
            reading is not None
            and reading.boot_at is not None
            and reading.boot_id is not None
            and reading.boot_id == self._boot_id
            and self.sources.since_boot() is not None
        ):
            base = reading.central_at - reading.boot_at
        self._state = (reading, base, None if reading is None else reading.offset)

    @property
    def reading(self) -> ClockReading | None:
        """Return the last reading."""
        return self._state[0]

    @property
    def boot_id(self) -> str | None:
        """Return this boot's id (None where the system has none)."""
        return self._boot_id

    def update(self, reading: ClockReading) -> None:
        """Take a new reading."""
        with self._lock:
            self._set(reading)

    def timestamp(self) -> float:
        """Return corrected unix time (the wall clock while no offset is known)."""
        _, base, offset = self._state
        if base is not None:
            boot = self.sources.since_boot()
            if boot is not None:
                return base + boot
        wall = self.sources.wall()
        return wall if offset is None else wall + offset

    def now(self) -> dt.datetime:
        """Return corrected time, aware, in UTC."""
        return dt.datetime.fromtimestamp(self.timestamp(), dt.UTC)

    def offset(self) -> float | None:
        """Return how far the wall clock is from central's now (None: never measured)."""
        if self._state[2] is None:
            return None
        return self.timestamp() - self.sources.wall()

    def status(self, warn_seconds: float, limit_seconds: float) -> dict[str, Any]:
        """Return the clock's state as `status` and `clock status` show it."""
        offset = self.offset()
        reading, base, _ = self._state
        out: dict[str, Any] = {
            "state": state_of(offset, warn_seconds, limit_seconds),
            "offset_s": None if offset is None else round(offset, 3),
            "warn_seconds": warn_seconds,
            "limit_seconds": limit_seconds,
            "local_time": dt.datetime.fromtimestamp(self.sources.wall(), dt.UTC).isoformat(),
            "corrected_time": self.now().isoformat(),
        }
        if offset is not None:
            out["message"] = f"this PC's clock is {describe(offset)}"
        if reading is not None:
            out["last_reading"] = {
                "offset_s": round(reading.offset, 3),
                "rtt_s": round(reading.rtt, 3),
                "at": dt.datetime.fromtimestamp(reading.central_at, dt.UTC).isoformat(),
                "same_boot": base is not None,
            }
        return out
