"""``whisper-edge bench``: our bundles side by side with PyTorch, optimum and CTranslate2 on the same clips.

Each backend runs in its own process (so peak RSS is that backend's alone): load, warm up on the
first clip, then transcribe every clip ``repeats`` times. Reported per backend: encoder ms per
window, decoder ms per token, end-to-end real-time factor (compute seconds / audio seconds, best
of the repeats per clip), peak RSS, load seconds, WER/CER under our Hindi normalizer. Output:
DIR/bench.json, DIR/bench.md and DIR/bench.png.

This module and the worker for our bundles are torch-free. The peers (whisper_edge/peers/, one file each)
and the conductor that prepares them and reads datasets (whisper_edge/benchmark.py) live outside runtime/:
a peer runs in its own process through the same worker protocol (``worker_main(make=…)``).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE, load_audio
from .fsutil import atomic_write_json, atomic_write_text
from .metrics import NORMALIZERS, error_rates, paired_bootstrap, utterance_errors

__all__ = ["run_bench", "load_clips", "format_table", "fmt_or_dash", "worker_main"]

log = logging.getLogger("whisper_edge")


def load_clips(data: str | os.PathLike, split: str = "test", limit: int | None = None, rows: list[dict] | None = None) -> list[dict]:
    """Clips as (id, 16-kHz array, reference), torch-free: from an audiofolder (metadata.csv with file_name and
    sentence), or from ``rows`` ({id, bytes or path, sentence}) that the caller read from a dataset."""
    data = Path(data)
    if rows is None:
        if not (data / "metadata.csv").is_file():
            raise ValueError(f"{data} has no metadata.csv; the torch-free bench reads an audiofolder (file_name, sentence). "
                             "For a saved dataset or another format run 'whisper-edge bench' with the [train] extra installed")
        import csv

        rows = []
        with open(data / "metadata.csv", newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                rows.append({"id": r["file_name"], "path": str(data / r["file_name"]), "sentence": r.get("sentence") or r.get("transcription", "")})
    rows = rows[:limit] if limit else rows
    clips = []
    for r in rows:
        wav = load_audio(r["bytes"] if r.get("bytes") else r["path"])
        clips.append({"id": r["id"], "audio": wav, "sentence": r["sentence"], "seconds": len(wav) / SAMPLE_RATE})
    if not clips:
        raise ValueError(f"no clips in {data} (split {split})")
    return clips


# ------------------------------------------------------------------------------------------ worker

def _peak_rss_mb() -> float:
    """Peak resident memory of this process since exec (Linux VmHWM; ru_maxrss elsewhere, which on Linux would
    also count the parent's pages copied by fork before exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 if sys.platform != "darwin" else r / 2**20


class _OursBackend:
    def __init__(self, target: str, threads: int, providers: list[str] | None, beam: int, max_new_tokens: int = 200,
                 vad: str = "off", timestamps: bool = False, session_options: dict | None = None):
        from .transcribe import DecodeOptions, Transcriber
        from .vad import VadOptions

        self.tr = Transcriber(target, threads=threads, providers=providers, session_options=session_options)
        # plain decoding, as the peers do (no temperature fallback): the same work for every backend
        self.opts = DecodeOptions(beam=beam, repetition_guard=4, max_new_tokens=max_new_tokens, temperatures=(0.0,),
                                  timestamps=timestamps)
        self.vad = VadOptions(method=vad)

    def transcribe(self, wav):
        from .transcribe import segments_text

        t = self.tr.timings
        before = (t.encoder_s, t.decoder_s, t.tokens, t.windows)
        segments = self.tr.transcribe_segments(wav, options=self.opts, vad=self.vad)
        text = segments_text(segments)
        return text, {"encoder_s": t.encoder_s - before[0], "decoder_s": t.decoder_s - before[1],
                      "tokens": t.tokens - before[2], "windows": t.windows - before[3],
                      "segments": [[s["start"], s["end"]] for s in segments if s["text"]]}


def worker_main(argv: list[str] | None = None, make=None) -> int:
    """One backend in this process: load, warm up, transcribe every clip; writes the raw results as JSON.

    ``make(backend, target, threads=, beam=, language=, max_new_tokens=)`` builds a peer; None runs our bundles."""
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--backend", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--clips", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--providers", default="")
    p.add_argument("--beam", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--language", default="hi")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--vad", default="off")
    p.add_argument("--model-timestamps", action="store_true")
    p.add_argument("--session-options", default="{}", help="onnxruntime SessionOptions attributes (JSON)")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    npz = np.load(a.clips, allow_pickle=False)
    audios = [npz[k] for k in sorted(npz.files, key=lambda k: int(k.split("_")[1]))]
    rss0 = _peak_rss_mb()
    t0 = time.perf_counter()
    if a.backend == "ours":
        backend = _OursBackend(a.target, a.threads, [x for x in a.providers.split(",") if x] or None, a.beam, a.max_new_tokens,
                               a.vad, a.model_timestamps, json.loads(a.session_options))
    elif make is not None:
        backend = make(a.backend, a.target, threads=a.threads, beam=a.beam, language=a.language, max_new_tokens=a.max_new_tokens)
    else:
        raise ValueError(f"backend {a.backend!r} is not ours; run it through its peer worker (whisper_edge.peers.run)")
    load_s = time.perf_counter() - t0
    backend.transcribe(audios[0])  # warm-up
    results = []
    for wav in audios:
        best, walls = None, []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            text, parts = backend.transcribe(wav)
            walls.append(time.perf_counter() - t0)
            if best is None or walls[-1] < best[1]:
                best = (text, walls[-1], parts)
        results.append({"text": best[0], "seconds": best[1], "seconds_median": float(np.median(walls)), **best[2]})
    out = {"backend": a.backend, "target": a.target, "threads": a.threads, "load_s": load_s, "results": results,
           "peak_rss_mb": _peak_rss_mb(), "baseline_rss_mb": rss0}
    Path(a.out).write_text(json.dumps(out))
    return 0


# ------------------------------------------------------------------------------------------ parent

def _busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (Linux /proc/stat), None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def other_load(busy0: float | None, busy1: float | None, own_cpu_s: float, wall_s: float) -> float | None:
    """The share of the machine's CPUs that something other than the bench kept busy during ``wall_s``: the machine's
    busy CPU seconds minus the bench worker's own, over wall × CPUs. Above BUSY the timings are not trustworthy."""
    if busy0 is None or busy1 is None or wall_s <= 0:
        return None
    return max(0.0, (busy1 - busy0 - own_cpu_s) / (wall_s * (os.cpu_count() or 1)))


BUSY = 0.10


def timestamp_errors(segments: list[list[float]], utterances: list[dict]) -> list[float]:
    """For every segment start (end), the distance in seconds to the nearest true utterance start (end)."""
    starts = np.asarray([u["start"] for u in utterances])
    ends = np.asarray([u["end"] for u in utterances])
    if not len(starts):
        return []
    return [float(np.min(np.abs(starts - s))) for s, _ in segments] + [float(np.min(np.abs(ends - e))) for _, e in segments]


def _summarize(res: dict, clips: list[dict], truth: dict | None = None) -> dict:
    rs = res["results"]
    audio_s = sum(c["seconds"] for c in clips)
    enc = sum(r.get("encoder_s", 0) for r in rs)
    win = sum(r.get("windows", 0) for r in rs)
    dec = sum(r.get("decoder_s", 0) for r in rs)
    tok = sum(r.get("tokens", 0) for r in rs)
    norm = NORMALIZERS["hindi"]
    rates = error_rates([c["sentence"] for c in clips], [r["text"] for r in rs], norm)
    timed = all("encoder_s" in r for r in rs)  # a peer without per-stage timings reports the end-to-end time only
    out = {"encoder_ms": 1000 * enc / win if win and timed else None,
           "decoder_ms_per_token": 1000 * dec / tok if tok and timed else None,
           "rtf": sum(r["seconds"] for r in rs) / audio_s,
           "rtf_median": sum(r.get("seconds_median", r["seconds"]) for r in rs) / audio_s,
           "peak_rss_mb": res["peak_rss_mb"], "load_s": res["load_s"], "wer": rates["wer"], "cer": rates["cer"], "tokens": tok}
    if timed and win:
        out["encoder_ms_by_length"] = encoder_ms_by_length(clips, rs)
    if truth and all("segments" in r for r in rs):
        errs = [e for c, r in zip(clips, rs) if c["id"] in truth for e in timestamp_errors(r["segments"], truth[c["id"]])]
        if errs:
            out["timestamp_error_s"] = {"median": float(np.median(errs)), "p95": float(np.percentile(errs, 95)),
                                        "boundaries": len(errs)}
    return out


LENGTH_BINS = (3.0, 5.0, 7.0)  # seconds: clips shorter than 3 s, 3–5, 5–7, longer


def encoder_ms_by_length(clips: list[dict], results: list[dict]) -> list[dict]:
    """Encoder ms per window by clip length (a dynamic audio context makes a short clip's window cheaper)."""
    edges = (0.0, *LENGTH_BINS, float("inf"))
    out = []
    for lo, hi in zip(edges, edges[1:]):
        sel = [r for c, r in zip(clips, results) if lo <= c["seconds"] < hi and r.get("windows")]
        if sel:
            out.append({"from_s": lo, "to_s": None if hi == float("inf") else hi, "clips": len(sel),
                        "encoder_ms": 1000 * sum(r["encoder_s"] for r in sel) / sum(r["windows"] for r in sel)})
    return out


def run_bench(targets: list[tuple[str, str, str]], clips: list[dict], out, *, data="", split: str = "test",
              threads: int = 2, providers: list[str] | None = None, beam: int = 1, repeats: int = 2,
              language: str = "hi", max_new_tokens: int = 200, peer_worker: str | None = None, vad: str = "off",
              model_timestamps: bool = False, session_options: dict | None = None) -> dict:
    """targets: (label, backend, path) or (label, backend, path, options), backend "ours" or a peer run by the module
    ``peer_worker``, options added to ``session_options`` for that row; clips: from :func:`load_clips`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    targets = [(*t, {})[:4] for t in targets]
    for _, backend, _, _ in targets:
        if backend != "ours" and not peer_worker:
            raise ValueError(f"backend {backend!r} needs a peer worker module (whisper_edge.benchmark passes it)")
    np.savez(out / "clips.npz", **{f"clip_{i}": c["audio"] for i, c in enumerate(clips)})
    truth_file = Path(data) / "utterances.json" if data else None  # true utterance times ('data long' writes them)
    truth = json.loads(truth_file.read_text(encoding="utf-8")) if truth_file and truth_file.is_file() else None
    rows = []
    for label, backend, path, row_options in targets:
        res_path = out / f"raw-{len(rows)}.json"
        module = __name__ if backend == "ours" else peer_worker
        cmd = [sys.executable, "-m", module, "--backend", backend, "--target", str(path),
               "--clips", str(out / "clips.npz"), "--threads", str(threads), "--beam", str(beam), "--repeats", str(repeats),
               "--language", language, "--out", str(res_path), "--max-new-tokens", str(max_new_tokens), "--providers", ",".join(providers or [])]
        if backend == "ours":
            cmd += ["--vad", vad, "--session-options", json.dumps((session_options or {}) | row_options)] + (
                ["--model-timestamps"] if model_timestamps else [])
        env = os.environ | {"OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
        log.info("bench %s (%s)…", label, backend)
        print(f"bench: {label} ({backend}) on {len(clips)} clips…", file=sys.stderr, flush=True)
        busy0, own0, t0 = _busy_seconds(), os.times(), time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        own1, wall = os.times(), time.perf_counter() - t0
        load = other_load(busy0, _busy_seconds(), (own1.children_user + own1.children_system)
                          - (own0.children_user + own0.children_system), wall)
        if load is not None and load > BUSY:
            log.warning("bench %s: other processes kept %.0f %% of the CPUs busy; its timings are not trustworthy",
                        label, 100 * load)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-3:]
            log.warning("backend %s failed: %s", label, " | ".join(tail))
            rows.append({"label": label, "backend": backend, "target": str(path), "error": " | ".join(tail)})
            continue
        res = json.loads(res_path.read_text())
        rows.append({"label": label, "backend": backend, "target": str(path)} | _summarize(res, clips, truth)
                    | {"other_load": load, "busy": bool(load is not None and load > BUSY),
                       "transcripts": [r["text"] for r in res["results"]]})
    _paired_differences(rows, [c["sentence"] for c in clips])
    report = {"clips": len(clips), "audio_seconds": round(sum(c["seconds"] for c in clips), 2), "threads": threads,
              "beam": beam, "repeats": repeats, "max_new_tokens": max_new_tokens, "vad": vad, "model_timestamps": model_timestamps,
              "session_options": session_options or {}, "data": str(data), "split": split, "machine": _machine(), "rows": rows}
    atomic_write_json(out / "bench.json", report)
    atomic_write_text(out / "bench.md", format_table(report) + "\n")
    try:
        _plot(report, out / "bench.png")
    except ImportError:
        log.warning("matplotlib is not installed: no bench.png (pip install whisper-edge[bench])")
    return report


def _paired_differences(rows: list[dict], refs: list[str]) -> None:
    """Each row's WER minus the first row's, with a paired bootstrap 95 % interval over the same clips."""
    ok = [r for r in rows if "error" not in r]
    if len(ok) < 2:
        return
    norm = NORMALIZERS["hindi"]
    base = utterance_errors(refs, ok[0]["transcripts"], norm)
    for r in ok[1:]:
        r["wer_vs_first"] = paired_bootstrap(base, utterance_errors(refs, r["transcripts"], norm))


def _machine() -> dict:
    import platform

    import onnxruntime

    from .cpu import int8_kernel

    return {"platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "onnxruntime": onnxruntime.__version__, "int8_kernel": int8_kernel()}


def _int8_note(report: dict) -> str:
    """Where the CPU's int8 kernels saturate (runtime/cpu.py), whether our int8 rows ran with exact_int8."""
    if (report.get("machine") or {}).get("int8_kernel") != "u8s8-saturating":
        return ""
    if (report.get("session_options") or {}).get("exact_int8", True):
        return ("; x86 without VNNI: our int8 rows ran with exact_int8 (u8u8) unless marked [exact_int8 off], "
                "which saturate 16-bit sums")
    return "; x86 without VNNI and exact_int8 off: our int8 rows ran with saturating 16-bit sums"


def fmt_or_dash(x, fmt: str) -> str:
    """A number in ``fmt``, or a dash for a missing one (tables)."""
    return "—" if x is None else format(x, fmt)


def format_table(report: dict) -> str:
    lines = [f"{report['clips']} clips, {report['audio_seconds']} s of audio, {report['threads']} threads, beam {report['beam']}, "
             f"RTF min / median of {report['repeats']} repeats" + _int8_note(report),
             "", "| backend | encoder ms / window | decoder ms / token | RTF min | RTF median | peak RSS MiB | WER % | CER % | other load |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        if "error" in r:
            lines.append(f"| {r['label']} | failed: {r['error'][:80]} | | | | | | | |")
            continue
        load = "—" if r.get("other_load") is None else f"{100 * r['other_load']:.0f} %" + (" BUSY" if r.get("busy") else "")
        lines.append(f"| {r['label']} | {fmt_or_dash(r['encoder_ms'], '.0f')} | {fmt_or_dash(r['decoder_ms_per_token'], '.1f')} | "
                     f"{r['rtf']:.3f} | {fmt_or_dash(r.get('rtf_median'), '.3f')} | {r['peak_rss_mb']:.0f} | {r['wer']:.2f} | {r['cer']:.2f} | {load} |")
    diffs = [r for r in report["rows"] if r.get("wer_vs_first")]
    if diffs:
        first = next(r for r in report["rows"] if "error" not in r)["label"]
        lines += ["", f"WER against {first} on the same clips (paired bootstrap 95 % interval): " + "; ".join(
            f"{r['label']} {r['wer_vs_first']['diff']:+.2f} ({r['wer_vs_first']['lo']:+.2f}..{r['wer_vs_first']['hi']:+.2f})"
            for r in diffs)]
    by_len = [r for r in report["rows"] if r.get("encoder_ms_by_length")]
    if by_len:
        lines += ["", "Encoder ms per window by clip length: " + "; ".join(
            f"{r['label']}: " + ", ".join(f"{b['from_s']:.0f}–{b['to_s']:.0f} s {b['encoder_ms']:.0f}" if b["to_s"] else
                                          f"≥ {b['from_s']:.0f} s {b['encoder_ms']:.0f}" for b in r["encoder_ms_by_length"])
            for r in by_len)]
    ts = [r for r in report["rows"] if r.get("timestamp_error_s")]
    if ts:
        lines += ["", "Segment boundaries against the true utterance times (s): "
                  + "; ".join(f"{r['label']} median {r['timestamp_error_s']['median']:.2f}, p95 {r['timestamp_error_s']['p95']:.2f} "
                              f"({r['timestamp_error_s']['boundaries']} boundaries)" for r in ts)]
    if any(r.get("busy") for r in report["rows"]):
        lines += ["", f"BUSY: other processes kept more than {100 * BUSY:.0f} % of the CPUs busy during a row marked BUSY; "
                  "its timings are not trustworthy: run the bench again on an idle machine."]
    return "\n".join(lines)


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if "error" not in r]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for r in rows:
        a.scatter(r["rtf"], r["wer"], s=40)
        a.annotate(r["label"], (r["rtf"], r["wer"]), fontsize=8, xytext=(4, 4), textcoords="offset points")
    a.set_xlabel("real-time factor (lower is faster)")
    a.set_ylabel("WER % (Hindi normalizer)")
    a.set_title("latency vs WER")
    b.barh([r["label"] for r in rows], [r["peak_rss_mb"] for r in rows])
    b.set_xlabel("peak RSS (MiB)")
    b.set_title("memory")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(worker_main())
