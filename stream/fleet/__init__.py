"""`screentime serve`: a camera fleet as a service over one config file.

`config` reads and checks the file, `days` cuts a run's accounting at local midnight into one
complete report per day, `collect` keeps the samples worth labelling. Nothing here is imported
by `import stream`; the CLI imports it inside `serve`.
"""
