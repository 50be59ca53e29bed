"""`serve` on a Ray cluster: the front door keeps the config, API, outputs and day files; each
camera's pipeline runs as a worker on whichever node has room (`stream.cluster.place`), its
records taken in order under a lease (`stream.cluster.remote`, `stream.cluster.worker`)."""
