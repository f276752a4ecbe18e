"""``python -m deployments.cluster``: run the cluster check (exit 1 with a reason on failure)."""

from deployments.cluster.run import main

raise SystemExit(main())
