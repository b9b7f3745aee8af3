"""The tamper-evident audit log: hash chain and signed checkpoints (`chain`, pure), tables
(`models`), the database adapter (`log`) and segment-fetch aggregation (`aggregate`)."""
