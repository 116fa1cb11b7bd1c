"""Torch-free transcription from a bundle: log-mel (numpy) → ONNX encoder → ONNX decoder with KV cache.

    from whisper_edge.runtime.transcribe import Transcriber
    text = Transcriber("bundle/").transcribe("clip.wav")

Decoding follows transformers' Whisper generate (so fp32 bundles give the same tokens): prompt
``<|startoftranscript|><|lang|><|transcribe|><|notimestamps|>``, ``suppress_tokens`` at every step,
``begin_suppress_tokens`` at the first, greedy or beam search, a token cap and a repetition guard.
Audio longer than the window is cut into consecutive windows (not truncated) and the texts joined.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE, as_waveform
from .bundle import BundleError, open_bundle, verify_bundle
from .decoding import DecodeOptions, repeats as _repeats, restarts as _restarts
from .cpu import exact_int8, int8_kernel
from .features import AUDIO_WINDOWS, DYNAMIC_BLOCK, DYNAMIC_MARGIN, dynamic_ctx, log_mel, window_samples
from .manifest import ManifestError, check_graphs, encoder_frames_fixed, parse_manifest
from .memory import release_freed_memory

__all__ = ["Transcriber", "DecodeOptions", "segments_text"]

log = logging.getLogger("whisper_edge")
MAX_TARGET_POSITIONS = 448  # Whisper's decoder positional table (every released size)
# onnxruntime's CPU arena keeps the largest activations it ever allocated (the encoder's attention scores) for the
# life of the session; without it an hour-long stream peaked at 240 instead of 264 MiB (docs/bench.md, "Memory").
# ``release_memory`` (not an onnxruntime setting) keeps large freed activations off glibc's heap (runtime/memory.py).
# ``audio_window`` (not an onnxruntime setting either): "auto" encodes each clip in a window sized to it when the
# bundle's model was trained for that (manifest ``dynamic_ctx``), else the full window; "fixed" always the full
# window; "dynamic" sizes the window even for a model not trained for it (whisper.cpp's ``--audio-ctx``: it costs WER).
# ``exact_int8`` (an onnxruntime session config entry, not an attribute): int8 MatMuls computed without 16-bit
# saturation on x86 CPUs without VNNI (runtime/cpu.py); it changes nothing on other CPUs.
# A profile's ``session`` or ``session_options`` overrides any of them.
DEFAULT_SESSION_OPTIONS = {"enable_cpu_mem_arena": False, "release_memory": True, "audio_window": "auto",
                           "exact_int8": True}


@dataclass
class Timings:
    encoder_s: float = 0.0
    decoder_s: float = 0.0  # single-token decoder steps only (a beam step counts once)
    prompt_s: float = 0.0
    tokens: int = 0
    windows: int = 0
    mel_s: float = 0.0


class Transcriber:
    def __init__(self, bundle: str | os.PathLike, *, threads: int | None = None, providers: list[str] | None = None,
                 verify: bool = True, session_options: dict | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 4 * (os.cpu_count() or 1) + 4):
            raise ValueError(f"threads must be a whole number from 1 to {4 * (os.cpu_count() or 1) + 4} on this machine "
                             f"({os.cpu_count()} cores), got {threads!r}")
        if not isinstance(bundle, (str, os.PathLike)):
            raise BundleError(f"a bundle is a folder or archive path, not a {type(bundle).__name__}")
        self.path = open_bundle(bundle)
        # an archive's cached copy was just checked in full by open_bundle: sizes suffice here
        self.manifest = verify_bundle(self.path, checksums=verify and self.path == Path(bundle))
        m = parse_manifest(self.manifest, str(self.path / "manifest.json"))
        self.info = m
        so = ort.SessionOptions()
        session_options = DEFAULT_SESSION_OPTIONS | (session_options or {})
        if session_options.pop("release_memory"):
            release_freed_memory()
        if session_options.pop("exact_int8"):
            exact_int8(so)
        elif m.quantization == "int8" and int8_kernel() == "u8s8-saturating":
            log.warning("exact_int8 is off on an x86 CPU without VNNI: this int8 bundle's MatMuls saturate 16-bit sums "
                        "(+4.5 WER under noise for an all-int8 Whisper-base in docs/bench.md); leave it on unless you "
                        "have measured your bundle both ways (bench --exact-int8 on,off)")
        window = session_options.pop("audio_window")
        if window not in AUDIO_WINDOWS:
            raise ValueError(f"audio_window must be one of {', '.join(AUDIO_WINDOWS)}, got {window!r}")
        if threads:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
        for k, v in (session_options or {}).items():
            setattr(so, k, v)
        available = ort.get_available_providers()
        wanted = providers or ["CPUExecutionProvider"]
        use = [p for p in wanted if p in available]
        for p in wanted:
            if p not in available:
                log.warning("execution provider %s is not available here (have %s); falling back", p, ", ".join(available))
        if "CPUExecutionProvider" not in use:
            use.append("CPUExecutionProvider")
        self.providers = use
        try:
            self.encoder = ort.InferenceSession(str(self.path / m.graphs["encoder"].file), so, providers=use)
            self.decoder = ort.InferenceSession(str(self.path / m.graphs["decoder"].file), so, providers=use)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BundleError(f"{self.path}: onnxruntime cannot load the graphs: {exc}") from None
        try:
            check_graphs(m, self.encoder, self.decoder, str(self.path / "manifest.json"))
        except ManifestError as exc:
            raise BundleError(str(exc)) from None
        if not (self.path / "tokenizer.json").is_file():
            raise BundleError(f"{self.path}: tokenizer.json is missing; the bundle is incomplete — export or unpack it again")
        self.tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        arch = m.architecture
        self.audio_ctx = m.audio_ctx
        self.n_samples = window_samples(self.audio_ctx)
        self.dynamic = self._window_rule(window, m)
        self.n_mels = m.n_mels
        self.head_dim = arch.head_dim
        self.self_layers = arch.self_layers
        self.self_heads = {i: arch.decoder[i]["self_heads"] for i in self.self_layers}
        self.cross_names = list(m.graphs["encoder"].outputs)
        self.float_type = np.float32  # every graph takes and returns float32 (fp16 bundles keep fp32 inputs/outputs)
        t = m.tokens
        vmap = m.vocab_map
        self.to_old = np.asarray(vmap, dtype=np.int64) if vmap else None
        self.to_new = {int(o): n for n, o in enumerate(vmap)} if vmap else None
        self.tok = {k: self._new(getattr(t, k)) for k in ("sot", "eot", "transcribe", "no_timestamps")}
        self.ts_begin = self._new(t.no_timestamps + 1)  # <|0.00|>: the timestamp tokens follow <|notimestamps|>
        self.chunk_s = self.n_samples / SAMPLE_RATE  # the length of the window being decoded (s), set by _decode_window
        no_speech = self.tokenizer.token_to_id("<|nospeech|>") or self.tokenizer.token_to_id("<|nocaptions|>")
        self.no_speech = self._new(no_speech) if no_speech is not None else None
        self.last_decode: dict = {}
        self.languages = {k: self._new(v) for k, v in t.languages.items() if self._new(v) is not None}
        self.suppress = np.asarray([x for x in (self._new(v) for v in t.suppress) if x is not None], dtype=np.int64)
        self.begin_suppress = np.asarray([x for x in (self._new(v) for v in t.begin_suppress) if x is not None], dtype=np.int64)
        self.language = m.language
        self.timings = Timings()

    def _window_rule(self, window: str, m) -> dict | None:
        """{"block", "margin"} when each clip gets a window sized to it, None for the full window."""
        if window == "fixed" or (window == "auto" and not m.dynamic_ctx):
            return None
        if encoder_frames_fixed(self.encoder):
            if window == "auto":
                return None
            raise BundleError(f"{self.path}: audio_window 'dynamic' needs an encoder graph with a free frame axis; this "
                              "bundle's takes a fixed window — export it again with this version, or use 'fixed'")
        if not m.dynamic_ctx:
            log.warning("audio_window 'dynamic': this bundle's model was not trained for shorter windows (recipe "
                        "dynamic_ctx); expect a higher WER than with the full window")
        return dict(m.dynamic_ctx or {"block": DYNAMIC_BLOCK, "margin": DYNAMIC_MARGIN})

    def window_positions(self, n_samples: int) -> int:
        """Encoder positions the window for a clip of ``n_samples`` gets (the bundle's audio_ctx unless dynamic)."""
        if self.dynamic is None:
            return self.audio_ctx
        return dynamic_ctx(n_samples, self.audio_ctx, self.dynamic["block"], self.dynamic["margin"])

    def _capped(self, opts: DecodeOptions) -> DecodeOptions:
        """The decoder has MAX_TARGET_POSITIONS positions: the prompt plus the new tokens must fit."""
        room = MAX_TARGET_POSITIONS - 4
        if opts.max_new_tokens > room:
            log.warning("max_new_tokens %d is more than the decoder's %d positions allow; using %d",
                        opts.max_new_tokens, MAX_TARGET_POSITIONS, room)
            from dataclasses import replace

            return replace(opts, max_new_tokens=room)
        return opts

    def _new(self, old_id: int):
        if self.to_new is None:
            return int(old_id)
        return self.to_new.get(int(old_id))

    # ---------------------------------------------------------------- features and graphs
    def features(self, audio: np.ndarray, positions: int | None = None) -> np.ndarray:
        """Log-mel of one window: the full window, or with a dynamic audio context one sized to ``audio`` (``positions``
        encoder positions when given)."""
        positions = self.window_positions(len(audio)) if positions is None else positions
        return log_mel(audio, n_samples=window_samples(positions), n_mels=self.n_mels)

    def encode(self, mel: np.ndarray) -> dict[str, np.ndarray]:
        t0 = time.perf_counter()
        outs = self.encoder.run(None, {"mel": mel.astype(self.float_type)})
        self.timings.encoder_s += time.perf_counter() - t0
        return dict(zip(self.cross_names, outs))

    def _empty_cache(self, batch: int) -> dict[str, np.ndarray]:
        cache = {}
        for i in self.self_layers:
            z = np.zeros((batch, self.self_heads[i], 0, self.head_dim), dtype=self.float_type)
            cache[f"self_k_{i}"], cache[f"self_v_{i}"] = z, z
        return cache

    def step(self, tokens: np.ndarray, offset: int, cache: dict, cross: dict) -> tuple[np.ndarray, dict]:
        t0 = time.perf_counter()
        feeds = {"tokens": tokens.astype(np.int64), "offset": np.asarray(offset, dtype=np.int64), **cache, **cross}
        outs = self.decoder.run(None, feeds)
        if offset == 0:  # the prompt: its first position (after <|startoftranscript|>) gives the no-speech probability
            self.sot_logits = outs[0][:, 0, :].astype(np.float32)
        if tokens.shape[1] == 1:  # one new token per sequence: the per-token cost
            self.timings.decoder_s += time.perf_counter() - t0
            self.timings.tokens += 1
        else:  # the prompt
            self.timings.prompt_s += time.perf_counter() - t0
        new_cache = {}
        for j, i in enumerate(self.self_layers):
            new_cache[f"self_k_{i}"], new_cache[f"self_v_{i}"] = outs[1 + 2 * j], outs[2 + 2 * j]
        return outs[0][:, -1, :].astype(np.float32), new_cache

    def prompt(self, language: str | None, timestamps: bool = False) -> list[int]:
        lang = language or self.language
        if lang not in self.languages:
            raise ValueError(f"language {lang!r} is not in this bundle (has {', '.join(sorted(self.languages)[:12])}…)")
        trimmed = self.info.extra.get("vocab")
        if trimmed not in (None, "full") and lang != trimmed:
            raise ValueError(f"this bundle's vocabulary was trimmed to {trimmed!r} (export --vocab {trimmed}): it cannot "
                             f"write {lang!r} text; use a bundle exported without --vocab for other languages")
        head = [self.tok["sot"], self.languages[lang], self.tok["transcribe"]]
        return head if timestamps else head + [self.tok["no_timestamps"]]

    def _same_word(self, a: int, b: int) -> bool:
        """Two tokens whose texts differ at most by surrounding space (" म" and "म")."""
        return self.text([a]).strip() == self.text([b]).strip()

    def _rules(self, row: np.ndarray, seq: list[int], opts: DecodeOptions) -> np.ndarray:
        """The timestamp rules (runtime/decoding.py) when decoding with timestamps; else the row as it is."""
        if not opts.timestamps:
            return row
        from .decoding import timestamp_mask

        return timestamp_mask(row, seq, ts_begin=self.ts_begin, eot=self.tok["eot"], window_s=self.chunk_s)

    def _mask(self, logits: np.ndarray, first: bool) -> np.ndarray:
        if len(self.suppress):
            logits[:, self.suppress] = -np.inf
        if first and len(self.begin_suppress):
            logits[:, self.begin_suppress] = -np.inf
        return logits

    # ---------------------------------------------------------------- decoding
    def decode_greedy(self, cross: dict, opts: DecodeOptions, temperature: float = 0.0, rng=None) -> list[int]:
        """Greedy decoding, or sampling at ``temperature`` > 0 (with ``rng``)."""
        prompt = self.prompt(opts.language, opts.timestamps)
        logits, cache = self.step(np.asarray([prompt]), 0, self._empty_cache(1), cross)
        out: list[int] = []
        offset = len(prompt)
        eot = self.tok["eot"]
        self.last_logprob = 0.0
        for k in range(opts.max_new_tokens):
            row = self._rules(self._mask(logits, k == 0)[0], out, opts)
            if temperature > 0:
                z = (row - row.max()) / temperature
                p = np.exp(z)
                tok = int((rng or np.random.default_rng(opts.seed)).choice(len(p), p=p / p.sum()))
            else:
                tok = int(np.argmax(row))
            self.last_logprob -= float(np.log(np.sum(np.exp(row - row[tok]))))  # log-softmax of the pick
            if tok == eot:
                break
            out.append(tok)
            if opts.repetition_guard and _repeats(out, opts.repetition_guard):
                log.warning("repetition guard: stopping a loop after %d tokens", len(out))
                break
            if opts.restart_guard and (k := _restarts(out, opts.restart_guard, self._same_word)):
                log.warning("restart guard: the text started over after %d tokens; the copy is dropped", len(out) - k)
                del out[-k:]
                break
            if k == opts.max_new_tokens - 1:
                break
            logits, cache = self.step(np.asarray([[tok]]), offset, cache, cross)
            offset += 1
        return out

    def decode_beam(self, cross: dict, opts: DecodeOptions) -> list[int]:
        """Beam search (log-probabilities, finished hypotheses ranked by score / length^penalty)."""
        b = opts.beam
        prompt = self.prompt(opts.language, opts.timestamps)
        cross_b = {k: np.repeat(v, b, axis=0) for k, v in cross.items()}
        logits, cache = self.step(np.asarray([prompt] * b), 0, self._empty_cache(b), cross_b)
        beams = [([], 0.0)] * b
        finished: list[tuple[list[int], float]] = []
        offset = len(prompt)
        eot = self.tok["eot"]
        for k in range(opts.max_new_tokens):
            logits = self._mask(logits, k == 0)
            if opts.timestamps:
                logits = np.stack([self._rules(logits[r], beams[r][0], opts) for r in range(len(logits))])
            logp = logits - logits.max(axis=1, keepdims=True)
            logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
            cand = []
            rows = 1 if k == 0 else b  # at the first step every beam is the same
            for r in range(rows):
                top = np.argpartition(-logp[r], 2 * b)[: 2 * b]
                for t in top:
                    cand.append((beams[r][1] + float(logp[r, t]), r, int(t)))
            cand.sort(key=lambda c: -c[0])
            new, src = [], []
            for score, r, t in cand:
                seq = beams[r][0] + [t]
                if t == eot:
                    finished.append((beams[r][0], score))
                else:
                    new.append((seq, score))
                    src.append(r)
                if len(new) == b:
                    break
            if len(finished) >= b or k == opts.max_new_tokens - 1:
                break
            best_fin = max((s / max(1, len(q)) ** opts.length_penalty for q, s in finished), default=-np.inf)
            if best_fin > max(s / max(1, len(q)) ** opts.length_penalty for q, s in new) and len(finished) >= b:
                break
            beams = new
            idx = np.asarray(src)
            cache = {n: v[idx] for n, v in cache.items()}
            logits, cache = self.step(np.asarray([[q[-1]] for q, _ in beams]), offset, cache, cross_b)
            offset += 1
            if opts.repetition_guard and all(_repeats(q, opts.repetition_guard) for q, _ in beams):
                break
        pool = finished or beams
        best = max(pool, key=lambda x: x[1] / max(1, len(x[0])) ** opts.length_penalty)
        self.last_logprob = best[1]
        return best[0]

    def text(self, ids: list[int]) -> str:
        if self.to_old is not None:
            ids = [int(self.to_old[i]) for i in ids]
        first_timestamp = self.info.tokens.no_timestamps + 1
        ids = [i for i in ids if i < first_timestamp]  # timestamp tokens carry no text
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def _decode_window(self, chunk: np.ndarray, options: DecodeOptions) -> list[int]:
        from .decoding import decode_with_fallback, periodic

        self.chunk_s = len(chunk) / SAMPLE_RATE
        sized = self.window_positions(len(chunk))
        # a window sized to the clip in which the model says one sentence over and over is decoded again in the full
        # window the model was first trained on (docs/export.md, "A sized window whose text loops")
        for positions in dict.fromkeys((sized, self.audio_ctx)):
            t0 = time.perf_counter()
            mel = self.features(chunk, positions)[None]
            self.timings.mel_s += time.perf_counter() - t0
            cross = self.encode(mel)
            self.timings.windows += 1
            ids, self.last_decode = decode_with_fallback(self, cross, options)
            if positions != sized:
                self.last_decode["full_window"] = True
            elif positions == self.audio_ctx or not periodic(self.text(ids).split()):
                break
        return ids

    def transcribe_segments(self, audio, *, options: DecodeOptions = DecodeOptions(), vad=None) -> list[dict]:
        """Segments ``{start, end, text, tokens, avg_logprob}`` (seconds). With ``vad`` (runtime.vad.VadOptions,
        method other than off) the windows follow the speech: silence is skipped, long audio is cut in pauses,
        each region (or, with ``vad.pack``, a run of regions up to the window) decoded alone."""
        from .vad import VadOptions, plan_windows, speech_probs, speech_regions

        vad = vad or VadOptions(method="off")
        name = str(audio) if isinstance(audio, (str, os.PathLike)) else type(audio).__name__
        wav = as_waveform(audio, source=name)
        options = self._capped(options)
        if vad.method == "off":
            spans = [(s, min(len(wav), s + self.n_samples)) for s in range(0, len(wav), self.n_samples)
                     if s == 0 or len(wav) - s >= 0.2 * SAMPLE_RATE]
            detector = "off"
        else:
            probs, detector = speech_probs(wav, vad.method)
            spans = plan_windows(speech_regions(probs, vad), probs, self.n_samples, vad.pack)
        self.last_vad = detector
        out = []
        for s, e in spans:
            out += self.window_segments(wav[s:e], s / SAMPLE_RATE, options)
        return out

    def window_segments(self, chunk: np.ndarray, start_s: float, options: DecodeOptions) -> list[dict]:
        """Decode one window that starts ``start_s`` into the audio: one segment spanning it, or with
        ``options.timestamps`` one segment per <|t0|> text <|t1|> run at the model's own times."""
        ids = self._decode_window(chunk, options)
        end_s = start_s + len(chunk) / SAMPLE_RATE
        if not options.timestamps:
            return [{"start": round(start_s, 3), "end": round(end_s, 3), "text": self.text(ids),
                     "tokens": [int(i) for i in ids], **self.last_decode}]
        from .decoding import split_by_timestamps

        return [{"start": round(start_s + a, 3), "end": round(min(end_s, start_s + b), 3), "text": self.text(part),
                 "tokens": [int(i) for i in part], **self.last_decode}
                for a, b, part in split_by_timestamps(ids, self.ts_begin, len(chunk) / SAMPLE_RATE)]

    def transcribe(self, audio, *, options: DecodeOptions = DecodeOptions(), return_tokens: bool = False, vad=None):
        """Transcribe a path, encoded bytes, a 16-kHz array (float, or integer PCM) or a ``(samples, rate)`` pair.
        Long audio is split into consecutive windows, or with ``vad`` into speech regions (transcribe_segments)."""
        segments = self.transcribe_segments(audio, options=options, vad=vad)
        text = segments_text(segments)
        return (text, [s["tokens"] for s in segments]) if return_tokens else text


def segments_text(segments: list[dict]) -> str:
    """The transcript of a list of segments: their non-empty texts joined by spaces."""
    return " ".join(s["text"] for s in segments if s["text"])
