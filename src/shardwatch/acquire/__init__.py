"""acquire."""
