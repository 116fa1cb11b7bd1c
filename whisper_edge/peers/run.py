"""Worker process for a bench peer: ``python -m whisper_edge.peers.run --backend NAME …`` (runtime/bench.py's protocol)."""

from __future__ import annotations

import sys

from ..runtime.bench import worker_main
from . import peer_module


def _make(backend, target, *, threads, beam, language, max_new_tokens):
    peer = peer_module(backend).make(target, threads=threads, beam=beam, language=language)
    peer.max_new_tokens = max_new_tokens
    return peer


if __name__ == "__main__":
    sys.exit(worker_main(make=_make))
