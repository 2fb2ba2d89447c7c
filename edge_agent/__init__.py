"""The edge agent of a production line PC.

It leases ranges of serial numbers from central ahead of time, issues and prints labels from
them offline, records every fact in a local SQLite outbox in the same transaction that
consumes the number, and syncs the outbox to central when it can. It compares each printer's
label odometer with the labels it sent (`edge_agent.odometer`) and holds a printer that printed
labels it has no record of. `edge_agent.cli` is the
`lineledger-edge` command; `edge_agent.service` is the unattended service it runs.
"""

import logging

# Library code logs under "lineledger.edge"; a one-shot CLI command shows errors itself, so
# its warnings must not reach stderr a second time through logging's last-resort handler.
# The `run` service configures logging and gets them.
logging.getLogger("lineledger").addHandler(logging.NullHandler())
