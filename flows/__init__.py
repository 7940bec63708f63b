"""Prefect flows, shipped as `shardwatch.flows` (see README.md)."""
