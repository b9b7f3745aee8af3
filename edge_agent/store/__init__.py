"""The agent's durable local segment buffer (see buffer.py for the commit protocol).

Pure cores: eviction.py (what to delete over quota), chain.py (hash-chain check),
recovery.py (what to repair after a crash). I/O: files.py (filesystem seam), index.py and
schema.py (SQLite), quota.py (applies eviction plans), opening.py (lock, open, repair).
"""

from edge_agent.store.buffer import SegmentBuffer
from edge_agent.store.errors import DiskFullError, StoreError
from edge_agent.store.eviction import EvictionPlan, plan_eviction

__all__ = ["DiskFullError", "EvictionPlan", "SegmentBuffer", "StoreError", "plan_eviction"]
