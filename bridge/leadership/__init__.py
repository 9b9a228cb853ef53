"""Cluster roles held through PostgreSQL advisory locks: the delivery leader of a portal, the holder of a PBX."""

from bridge.leadership.lease import Lease, LeaseTiming, Role, lock_key

__all__ = ["Lease", "LeaseTiming", "Role", "lock_key"]
