"""The results store's Alembic migrations, shipped as `shardwatch.migrations` (see README.md)."""
