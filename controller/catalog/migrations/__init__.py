"""The catalog's Alembic environment: `env.py`, the revision template and `versions/`.

Configured in code by `controller.catalog.schema.alembic_config` (no alembic.ini). Adding a
migration: docs/operations.md ("Adding a migration").
"""
