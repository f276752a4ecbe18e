"""The bill sync's steps: plan a page of bills (pure), post batches to one tenant (I/O)."""
