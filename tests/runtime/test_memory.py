"""runtime/memory.py: freed activations go back to the operating system."""

import platform
import subprocess
import sys
import textwrap

import pytest

from whisper_edge.runtime.memory import release_freed_memory

# Big blocks freed after glibc raised its dynamic mmap threshold stay on the heap when small live objects sit
# between them: the process keeps them. With a fixed threshold they are mmapped and returned on free.
SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    from whisper_edge.runtime.memory import release_freed_memory
    if sys.argv[1] == "1":
        assert release_freed_memory()
    def rss():
        return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")) // 1024
    a = np.ones(8 << 20, np.uint8); del a   # glibc raises its threshold to 8 MiB here
    before = rss()
    keep, big = [], []
    for i in range(40):
        big.append(np.ones(2 << 20, np.uint8)); keep.append(np.ones(2000, np.uint8))
    del big
    print(rss() - before)
""")


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_blocks_are_returned():
    def kept(flag):
        out = subprocess.run([sys.executable, "-c", SCRIPT, flag], capture_output=True, text=True, check=True,
                             env={"PATH": "/usr/bin:/bin"})
        return int(out.stdout.strip())
    assert kept("0") >= 40  # the heap keeps most of the 80 MiB freed
    assert kept("1") <= 8


@pytest.mark.parametrize("bad", [0, 3, 64 * 1024, 1.5, True, "256"])
def test_bad_threshold(bad):
    with pytest.raises(ValueError, match="mmap threshold"):
        release_freed_memory(bad)
