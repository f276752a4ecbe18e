"""``make bench``: speed at Xero's ceiling, our overhead over a plain script, memory, reruns."""
