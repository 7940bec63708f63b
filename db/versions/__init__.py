"""Date-prefixed Alembic revisions (Alembic skips this file)."""
