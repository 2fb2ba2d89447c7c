"""The fault suite: real processes (central, edge CLIs and services, the printer simulator)
on SQLite and PostgreSQL under injected faults, each scenario ending with the invariant
checker (`invariants.py`).

- `proxy.py`: a fault-injecting HTTP/1.1 proxy between agents and central (drop, delay,
  duplicate or refuse requests per path, at run time).
- `harness.py`: a central that can be SIGKILLed, agents driven through their CLI (optionally
  under libfaketime), small tmpfs disks (root).
- `test_central_kill.py`, `test_lost_answers.py`, `test_disk.py`, `test_clock.py`,
  `test_rollback.py`: the scenarios; `test_proxy.py`, `test_invariants.py` test the tools.
"""
