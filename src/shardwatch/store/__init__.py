"""Store: the results database (PostgreSQL, or embedded SQLite) behind typed functions."""
