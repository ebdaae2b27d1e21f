"""Channels (SPEC's "wrapper" of workers): the per-channel runner that dispatches deliveries to
worker processes, its pacing and rate groups, and the probe schedule of a misconfigured channel."""
