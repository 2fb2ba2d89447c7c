"""A separate process that enrolls as an agent and requests leases as fast as it can.

Usage: python -m tests.e2e.lease_hammer CENTRAL_URL ENROLL_CODE SCOPE COUNT
Prints one JSON line per granted lease: {"first": .., "last": ..}.
"""

from __future__ import annotations

import json
import os
import sys
import time

from edge_agent.client import CentralClient
from protocol.ids import uuid7
from protocol.messages import EnrollRequest, LeaseRequest
from protocol.serials import Scope


def main() -> int:
    url, code, scope_key, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    client = CentralClient(url, None, 30)
    client.token = client.enroll(EnrollRequest(code)).token
    scope = Scope.from_key(scope_key)
    for i in range(count):
        rid = uuid7(time.time_ns() // 1_000_000, os.urandom(10))
        resp = client.lease(LeaseRequest(rid, scope, 1 + (i * 7919 + os.getpid()) % 97))
        for lease in resp.leases:
            sys.stdout.write(json.dumps({"first": lease.first, "last": lease.last}) + "\n")
    client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
