"""Counting: the tally and the accountant (totals, segments, outages), smoothing,
near-duplicate reuse, the report, resuming, and the live numbers."""
