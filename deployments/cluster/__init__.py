"""``make cluster-test``: the bill sync on a Prefect cluster with PostgreSQL, on loopback.

Every part is a real process: a Prefect server on a fresh PostgreSQL database, the
``billsync-process`` work pool with two process workers, the deployments of
``deployments/prefect.yaml`` (``prefect deploy --all``), the project database on a private
PostgreSQL instance of its own (so it can be restarted), and the Xero and m3ter sandboxes with
Xero's limits on a short "minute". ``python -m deployments.cluster`` proves exactly-once
delivery under concurrent and killed runs, Xero's per-tenant limits across workers, one token
refresh per expiry, and a sync that outlives a restart of the Prefect server or of the
project's PostgreSQL; then it stops everything it started (by process id), drops its
databases and removes the private instance.
"""
