"""How many connections each gunicorn worker holds, in memory all workers share, so a new
connection goes to the worker holding the fewest.

Every worker waits on the one listening socket and the kernel wakes them all; whichever runs
first accepts. One worker often takes several connections in a row, and keep-alive clients stay
where they landed: measured under gunicorn's gthread with 2 workers, 2 connections shared one
worker in 4 of 10 tries and 8 split 6/2 in 3 of 10, leaving half a machine idle for a client's
whole session. Here each worker publishes its connection count and a heartbeat in a table the
master creates before it forks; a worker that holds more connections than another live worker
leaves a new connection to that one, for at most `ACCEPT_DEFER` (if the other does not take it,
this one does), so balancing can delay an accept but never refuse one.
"""

from __future__ import annotations

import mmap
import struct
import time

SLOTS = 64  # slot = a worker's spawn age % SLOTS: two live workers share one only if one
# outlived 64 spawns of others, and then balancing sees one of the two, which costs evenness only
ENTRY = struct.Struct("<qd")  # open connections, monotonic time of the last publish (0: none)
TABLE = struct.Struct("<" + "qd" * SLOTS)
STALE_AFTER = 3.0  # seconds without a publish after which a slot's worker counts as gone
ACCEPT_DEFER = 0.005  # seconds a busier worker leaves a new connection to a less busy one


class Board:
    """The shared table: one slot per worker, written only by its worker."""

    def __init__(self) -> None:
        self.memory = mmap.mmap(-1, TABLE.size)  # anonymous and shared: inherited by fork

    def publish(self, slot: int, connections: int) -> None:
        """Record this process's open connections now."""
        ENTRY.pack_into(self.memory, slot * ENTRY.size, connections, time.monotonic())

    def clear(self, slot: int) -> None:
        """This worker takes no more connections."""
        ENTRY.pack_into(self.memory, slot * ENTRY.size, 0, 0.0)

    def fewest_elsewhere(self, slot: int) -> int | None:
        """The fewest connections any other live worker holds (None: no other worker)."""
        values = TABLE.unpack_from(self.memory)
        oldest = time.monotonic() - STALE_AFTER
        fewest: int | None = None
        for index in range(0, len(values), 2):
            connections, stamp = values[index:index + 2]
            if stamp and stamp >= oldest and index // 2 != slot \
                    and (fewest is None or connections < fewest):
                fewest = connections
        return fewest
