"""The default GX suites, shipped as `shardwatch.expectations` (see README.md)."""
