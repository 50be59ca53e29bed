"""`screentime batch`: a whole archive of videos, on one machine or a Ray cluster, resumable.

One job per module: `plan` (flags, videos, report names, what is done), `decode` (the stage that
samples a video with `watch`'s own reader), `infer` (the actor that runs `watch`'s engine),
`collect` and `tally` (results -> each video's report, by `watch`'s accountant), `summary` (the
table), `progress` (the bars) and `run` (Ray). Nothing is imported here: Ray is loaded by
`stream.batch.run` only when a batch runs, and never by `import stream`.
"""
