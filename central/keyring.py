"""Versioned master keys, kept in a file of their own (mode 0600), never in the database.

The database records each version's fingerprint and which version is active, so every web
worker agrees on the version to use and a keyring that does not match is caught at once.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import threading
from pathlib import Path

from central.errors import ERR_KEY_UNAVAILABLE, ERR_KEYRING, CentralError, Unavailable
from protocol.keys import MASTER_KEY_BYTES, derive_lease_key, key_fingerprint


def _signature(path: Path) -> tuple[int, int, int]:
    """Return what changes when the file is rewritten (it is replaced, so the inode changes)."""
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class Keyring:
    """The master keys by version, as read from the keyring file."""

    def __init__(
        self, path: Path, keys: dict[int, bytes], signature: tuple[int, int, int] = (0, 0, 0)
    ) -> None:
        self.path = path
        self._keys = keys
        self._signature = signature
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path) -> Keyring:
        """Read the keyring file; a missing file is an empty keyring."""
        if not path.exists():
            return cls(path, {})
        try:
            signature = _signature(path)
            raw = json.loads(path.read_text("utf-8"))
            keys = {int(v): bytes.fromhex(k) for v, k in raw["versions"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise CentralError(ERR_KEYRING, f"the keyring {path} is unreadable") from None
        if any(len(k) != MASTER_KEY_BYTES for k in keys.values()):
            raise CentralError(ERR_KEYRING, f"the keyring {path} holds a key of the wrong size")
        return cls(path, keys, signature)

    @property
    def versions(self) -> list[int]:
        """Return the versions present, oldest first."""
        return sorted(self._keys)

    def fingerprint(self, version: int) -> str:
        """Return the public fingerprint of one version."""
        return key_fingerprint(self.master(version))

    def _reload_if_changed(self) -> None:
        """Pick up versions another process (`keys rotate`) added to the file since loading."""
        with self._lock:
            try:
                signature = _signature(self.path)
            except OSError:
                return
            if signature != self._signature:
                fresh = Keyring.load(self.path)
                self._keys, self._signature = fresh._keys, fresh._signature

    def master(self, version: int) -> bytes:
        """Return the master key of a version, or fail as a transient error."""
        key = self._keys.get(version)
        if key is None:
            self._reload_if_changed()
            key = self._keys.get(version)
        if key is None:
            raise Unavailable(
                ERR_KEY_UNAVAILABLE, f"master key version {version} is not in the keyring"
            )
        return key

    def lease_key(self, version: int, lease_id: str) -> bytes:
        """Derive the key of a lease."""
        return derive_lease_key(self.master(version), lease_id)

    def add_version(self) -> int:
        """Create the next version with a fresh random key and save the file atomically."""
        version = max(self._keys, default=0) + 1
        self._keys[version] = secrets.token_bytes(MASTER_KEY_BYTES)
        self._save()
        return version

    def _save(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        body = json.dumps({"versions": {str(v): k.hex() for v, k in sorted(self._keys.items())}})
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keyring-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            self._signature = _signature(self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
