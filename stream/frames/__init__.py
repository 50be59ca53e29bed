"""Frames: the reader thread, its bounded buffer, the sampler, black-bar cropping and
the model's preprocessing, between a source and the model."""
