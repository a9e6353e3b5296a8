"""The versioned document store on SQLAlchemy Core (SQLite or PostgreSQL)."""
