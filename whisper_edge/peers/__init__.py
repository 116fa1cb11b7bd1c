"""Bench peers: the tools people use today, one file each, benched beside our bundles.

Adding a peer (say whisper.cpp) is one file here and one entry in ``PEERS``: the module defines
``make(target, *, threads, beam, language)`` returning an object whose ``transcribe(wav)`` gives
``(text, {"encoder_s", "decoder_s", "tokens", "windows"})``, and optionally ``prepare(model_dir, out)``
that converts the dense checkpoint into what the peer loads. Each peer runs in its own process through
``python -m whisper_edge.peers.run`` (runtime/bench.py's worker protocol), so its peak memory is its own.
"""

from __future__ import annotations

import importlib

__all__ = ["PEERS", "PREPARE_OPTIONS", "peer_module", "WORKER"]

PEERS = {
    "pytorch": "whisper_edge.peers.pytorch",  # needs --model (the dense checkpoint)
    "optimum": "whisper_edge.peers.optimum",  # needs --model (exported once) or --optimum DIR
    "ctranslate2": "whisper_edge.peers.ctranslate2",  # --model converted once, --ct2 DIR, or the bundled base
    "whispercpp": "whisper_edge.peers.whispercpp",  # --model written once as ggml q8_0 (exporter/ggml.py)
    "whispercpp-f16": "whisper_edge.peers.whispercpp",  # … as ggml f16
}
PREPARE_OPTIONS = {"whispercpp-f16": {"ftype": "f16"}}  # a peer name's arguments to its module's ``prepare``
WORKER = "whisper_edge.peers.run"  # the worker module the bench launches for a peer


def peer_module(name: str):
    if name not in PEERS:
        raise ValueError(f"unknown bench peer {name!r}; choose from {', '.join(PEERS)}")
    return importlib.import_module(PEERS[name])
