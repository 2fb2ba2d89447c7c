"""Central jobs: the work that runs on a schedule in one process, never in a web worker.

`runs` records every run of a job in `job_runs` and is the one way a job runs, whoever starts
it; `locks` keeps two processes from running the schedule, or one job, at the same time;
`expiry` closes expired leases; the consistency checker is `checker` (what is done), over
`findings` (what a finding is), `lease_checks` and `serial_checks` (how findings are found);
`central.gentasks` makes what work orders asked for (SSCCs, randomised serials) as the
`generation_tasks` job; `catalog` names the jobs and `scheduler` runs them
(`lineledger-central jobs`). Cron can run any job instead with
`lineledger-central jobs run NAME`.
"""
