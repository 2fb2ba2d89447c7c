"""Pure code shared by the edge agent and the central registry.

This package cannot do any I/O: no sockets, files, databases, clocks or random numbers.
Callers pass in everything that comes from the outside world (`now`, random bytes, keys),
which keeps every function here deterministic and testable. A test enforces the rule by
reading the imports of every module in this folder.
"""

from protocol.errors import ProtocolError

__all__ = ["ProtocolError"]
