"""The default GX suites, shipped as `shardwatch.suites` (see README.md)."""
