"""The bench conductor (torch side): reads clips from any dataset, prepares the peers' models, and runs
runtime/bench.py's side-by-side bench. ``whisper-edge bench`` and the experiment both call :func:`bench`."""

from __future__ import annotations

from pathlib import Path

from .peers import PEERS, PREPARE_OPTIONS, WORKER, peer_module
from .runtime.bench import load_clips, run_bench

__all__ = ["bench", "dataset_clips"]


def dataset_clips(data, split: str = "test", limit: int | None = None) -> list[dict]:
    """Clips of any source ``training.data`` reads (saved dataset, audiofolder, Common Voice, manifest, hub id)."""
    data = Path(str(data))
    if (data / "metadata.csv").is_file():
        return load_clips(data, split, limit)
    from .training.data import load_speech_dataset

    ds = load_speech_dataset(data, split)
    n = len(ds) if not limit else min(limit, len(ds))
    rows = []
    for i in range(n):
        item = ds[i]
        a = item["audio"]
        rows.append({"id": str(item.get("id") or a.get("path") or i), "bytes": a.get("bytes"), "path": a.get("path"),
                     "sentence": item["sentence"]})
    return load_clips(data, split, limit, rows=rows)


def bench(bundles, data, out, *, compare=(), model=None, optimum=None, ct2=None, split: str = "test",
          limit: int | None = 20, threads: int = 2, providers=None, beam: int = 1, repeats: int = 2,
          max_new_tokens: int = 200, vad: str = "off", model_timestamps: bool = False,
          session_options: dict | None = None, audio_windows=(), exact_int8=()) -> dict:
    """Bench ``bundles`` (folders or archives) and the ``compare`` peers on the same clips; writes OUT/bench.*.
    ``audio_windows`` (auto, fixed, dynamic): each bundle once per window rule (a row each); ``exact_int8`` (on, off):
    likewise once per setting of the runtime's exact_int8 (runtime/cpu.py: on an x86 CPU without VNNI, off shows what
    int8 saturation costs)."""
    out = Path(out)
    from .runtime.features import AUDIO_WINDOWS

    bad = [w for w in audio_windows if w not in AUDIO_WINDOWS]
    if bad:
        raise ValueError(f"--audio-window: unknown {bad}; choose from {', '.join(AUDIO_WINDOWS)} (comma-separated for several)")
    bad = [e for e in exact_int8 if e not in ("on", "off")]
    if bad:
        raise ValueError(f"--exact-int8: unknown {bad}; choose from on, off (comma-separated for both)")
    windows = list(audio_windows) or [None]  # None: the session options' (or the runtime's default) rule
    exact = list(exact_int8) or [None]
    targets = [(Path(b).name + (f" [{w} window]" if len(windows) > 1 else "") + (f" [exact_int8 {e}]" if len(exact) > 1 else ""),
                "ours", str(b), ({"audio_window": w} if w else {}) | ({"exact_int8": e == "on"} if e else {}))
               for b in bundles or [] for w in windows for e in exact]
    compare = list(compare or [])
    unknown = set(compare) - set(PEERS)
    if unknown:
        raise ValueError(f"--compare: unknown {sorted(unknown)}; choose from {', '.join(PEERS)}")
    if compare and not model and set(compare) - {"ctranslate2"}:
        raise ValueError(f"--compare {'/'.join(sorted(set(compare) - {'ctranslate2'}))} needs --model (the dense checkpoint "
                         "the peers run)")
    given = {"optimum": optimum, "ctranslate2": ct2}
    labels = {"pytorch": "pytorch fp32", "optimum": "optimum fp32", "ctranslate2": "ctranslate2 int8",
              "whispercpp": "whisper.cpp q8_0", "whispercpp-f16": "whisper.cpp f16"}
    for name in compare:
        mod = peer_module(name)
        if given.get(name):
            path = str(given[name])
        elif hasattr(mod, "prepare") and model:
            path = str(mod.prepare(model, out / f"peer-{name}", **PREPARE_OPTIONS.get(name, {})))
        else:
            path = str(model or "bundled-base")
        targets.append((labels.get(name, name), name, path, {}))
    if not targets:
        raise ValueError("nothing to bench: give --bundle and/or --compare")
    clips = dataset_clips(data, split, limit)
    return run_bench(targets, clips, out, data=str(data), split=split, threads=threads, providers=providers, beam=beam,
                     repeats=repeats, max_new_tokens=max_new_tokens, peer_worker=WORKER, vad=vad,
                     model_timestamps=model_timestamps, session_options=session_options)
