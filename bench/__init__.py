"""Benchmarks of the clawgate gateway against a bare aiohttp echo ceiling (`make bench`)."""
