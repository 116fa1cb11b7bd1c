"""How the runtime's process gives freed memory back to the operating system.

With onnxruntime's CPU arena off (``Transcriber``'s default), every activation is a plain ``malloc``. glibc serves a
large block with ``mmap`` and returns it on ``free`` — but after the first such free it raises its mmap threshold
to that block's size (up to 32 MiB), so the encoder's attention scores and FFN activations, a few MiB each, land on
the heap from the second window on, where freed space stays mapped and fragments. A fixed threshold (``mallopt
M_MMAP_THRESHOLD``) keeps them on mmap: the bench's peak RSS on Whisper-base bundles fell by 21–33 MiB
(docs/bench.md, session 7, "Memory given back"). glibc only; elsewhere nothing is changed. The setting is process-wide, like the
``MALLOC_MMAP_THRESHOLD_`` environment variable that does the same (a variable the user set wins).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform

__all__ = ["release_freed_memory", "DEFAULT_MMAP_THRESHOLD_KB"]

log = logging.getLogger("whisper_edge")
DEFAULT_MMAP_THRESHOLD_KB = 256
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
_applied: int | None = None


def release_freed_memory(threshold_kb: int = DEFAULT_MMAP_THRESHOLD_KB) -> bool:
    """Serve allocations of at least ``threshold_kb`` KiB with mmap, so that freeing them returns the memory.

    Returns True when the setting is in force (glibc), False where it cannot apply (another C library, or the user's
    own ``MALLOC_MMAP_THRESHOLD_``). Calling it again with the same value does nothing."""
    global _applied
    if isinstance(threshold_kb, bool) or not isinstance(threshold_kb, int) or not 4 <= threshold_kb <= 32 * 1024:
        raise ValueError(f"mmap threshold must be a whole number of KiB from 4 to 32768, got {threshold_kb!r}")
    if _applied == threshold_kb:
        return True
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold_kb * 1024))
    except (OSError, AttributeError):
        ok = False
    if ok:
        _applied = threshold_kb
    else:
        log.debug("mallopt(M_MMAP_THRESHOLD) not available; freed activations stay on the heap")
    return ok
