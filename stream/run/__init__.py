"""A run: the pipeline of one source (source -> sampler -> engine -> tally -> events)
and the run that owns every source and output."""
