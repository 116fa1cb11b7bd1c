"""PyTorch evaluation: batched generate over a speech dataset, WER/CER under three normalizations."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..runtime.features import window_samples, window_seconds as _window_s
from ..runtime.audio import SAMPLE_RATE, AudioError
from ..runtime.dereverb import wpe
from ..runtime.metrics import error_rates, error_rates_by_normalizer, NORMALIZERS
from .data import load_speech_dataset, row_audio

__all__ = ["EvalOptions", "by_condition", "evaluate", "evaluate_model", "transcribe_batch"]

log = logging.getLogger("whisper_edge")


@dataclass(frozen=True)
class EvalOptions:
    split: str = "test"
    language: str = "hi"
    batch_size: int = 16  # spreads generate's per-step overhead (a one-off timing here: 1.18 → 0.75 s a clip, 8 → 16)
    limit: int | None = None
    num_beams: int = 1
    max_new_tokens: int = 200
    group_by: str | None = "voice_group"  # per-group WER when the dataset has this column
    noisy: bool = False  # evaluate() only: the split's clips under the corpus's test_noisy effects (data.noisy_copy)
    long: bool = False  # evaluate() only: the split's clips joined 2–4 to a window, as test_long (data.long_copy)
    dereverb: bool = False  # each clip through WPE dereverberation first (runtime/dereverb.py; eval only)

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {self.batch_size}")
        if self.num_beams < 1:
            raise ValueError(f"num_beams must be ≥ 1, got {self.num_beams}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be ≥ 1, got {self.limit}")
        if self.noisy and self.long:
            raise ValueError("--noisy and --long are two different copies of the split: choose one")


def window_seconds(model) -> float:
    """Longest audio the encoder takes in one window: 2 mel frames per position, 10 ms a frame."""
    return _window_s(model.config.max_source_positions)


def features_for(processor, model, audios: list[np.ndarray]) -> torch.Tensor:
    n = window_samples(model.config.max_source_positions)  # a trimmed audio context takes a shorter window
    return processor.feature_extractor(audios, sampling_rate=SAMPLE_RATE, return_tensors="pt", padding="max_length",
                                       max_length=n, truncation=True).input_features


@torch.inference_mode()
def transcribe_batch(model, processor, audios: list[np.ndarray], opts: EvalOptions) -> list[str]:
    feats = features_for(processor, model, audios).to(model.device, model.dtype)
    out = model.generate(
        input_features=feats,
        language=opts.language,
        task="transcribe",
        num_beams=opts.num_beams,
        do_sample=False,
        max_new_tokens=opts.max_new_tokens,
        attention_mask=torch.ones(feats.shape[0], feats.shape[-1], dtype=torch.long, device=feats.device),
    )
    return [t.strip() for t in processor.batch_decode(out, skip_special_tokens=True)]


def evaluate_model(model, processor, dataset, opts: EvalOptions, *, desc: str = "eval") -> dict:
    """Evaluate a loaded model on a Dataset (columns audio, sentence). Returns the report dict."""
    model.eval()
    n = len(dataset) if opts.limit is None else min(opts.limit, len(dataset))
    window = window_seconds(model)
    ids = dataset["id"][:n] if "id" in dataset.column_names else [None] * n
    groups = dataset[opts.group_by][:n] if opts.group_by and opts.group_by in dataset.column_names else None
    effects = dataset["augment"][:n] if "augment" in dataset.column_names else None  # the corpus's effect labels
    rows, skipped = [], []
    compute_s = audio_s = 0.0
    clips = []  # (row, wav, reference, name, seconds): every readable clip of the first n rows
    for row in range(n):
        item = dataset[row]
        audio = item["audio"]
        name = audio.get("path") or f"row {row}"
        try:
            wav = row_audio(audio)
        except (AudioError, OSError, TypeError) as exc:
            log.warning("skipping %s: %s", name, exc)
            skipped.append({"row": row, "path": name, "reason": str(exc)})
            continue
        seconds = len(wav) / SAMPLE_RATE
        if seconds > window:
            msg = f"{seconds:.1f} s is longer than the model's {window:.0f}-s window"
            log.warning("skipping %s: %s", name, msg)
            skipped.append({"row": row, "path": name, "reason": msg})
            continue
        if opts.dereverb:
            wav = wpe(wav)
        clips.append((row, wav, item["sentence"], name, seconds))
    # Longest first, so that a batch's clips need about as many tokens: greedy decoding runs until the longest
    # transcript of its batch ends. Each clip is decoded on its own features; only the order of work changes.
    clips.sort(key=lambda c: (-len(c[1]), c[0]))
    bar = tqdm(total=n, desc=desc, unit="utt", leave=False)
    bar.update(len(skipped))
    for start in range(0, len(clips), opts.batch_size):
        batch = clips[start:start + opts.batch_size]
        t0 = time.perf_counter()
        hyps = transcribe_batch(model, processor, [c[1] for c in batch], opts)
        compute_s += time.perf_counter() - t0
        for (row, _, ref, name, seconds), hyp in zip(batch, hyps):
            audio_s += seconds
            rec = {"row": row, "id": ids[row] or Path(name).name, "ref": ref, "hyp": hyp, "seconds": round(seconds, 3)}
            if groups is not None:
                rec["group"] = groups[row]
            if effects is not None:
                rec["augment"] = effects[row]
            rows.append(rec)
        bar.update(len(batch))
    bar.close()
    rows.sort(key=lambda r: r["row"])  # the report lists utterances in the split's order
    if not rows:
        raise ValueError(f"no utterance could be evaluated ({len(skipped)} skipped); see the warnings above")
    refs, hyps = [r["ref"] for r in rows], [r["hyp"] for r in rows]
    by_norm = error_rates_by_normalizer(refs, hyps)
    report = {
        "wer": by_norm["hindi"]["wer"],
        "cer": by_norm["hindi"]["cer"],
        "by_normalizer": by_norm,
        "utterances": len(rows),
        "skipped": len(skipped),
        "skipped_detail": skipped,
        "audio_seconds": round(audio_s, 2),
        "compute_seconds": round(compute_s, 2),
        "rtf": compute_s / audio_s if audio_s else None,
        "decoding": {"language": opts.language, "num_beams": opts.num_beams, "batch_size": opts.batch_size,
                     "dereverb": opts.dereverb,
                     "max_new_tokens": opts.max_new_tokens, "threads": torch.get_num_threads(),
                     "device": str(model.device)},
        "per_utterance": rows,
    }
    if groups is not None:
        report["by_group"] = {
            g: error_rates([r["ref"] for r in rows if r["group"] == g], [r["hyp"] for r in rows if r["group"] == g], NORMALIZERS["hindi"])
            | {"utterances": sum(r["group"] == g for r in rows)}
            for g in sorted({r["group"] for r in rows})
        }
    if effects is not None and any(r["augment"] not in (None, "", "clean") for r in rows):
        report["by_condition"] = by_condition(rows)
    return report


def by_condition(rows: list[dict]) -> dict:
    """WER/CER of the rows in each condition their ``augment`` label puts them in (noise band, reverb, telephone;
    training/corpus/augment.py ``conditions``); a row counts in several. The hard cases a split's mean hides."""
    from .corpus.augment import CONDITIONS, conditions

    members = {c: [] for c in CONDITIONS}
    for r in rows:
        for c in conditions(r.get("augment")):
            members[c].append(r)
    return {c: error_rates([r["ref"] for r in rs], [r["hyp"] for r in rs], NORMALIZERS["hindi"]) | {"utterances": len(rs)}
            for c, rs in members.items() if rs}


def load_model(model_dir: str | Path, device: str | None = None):
    """Load a dense or pruned checkpoint (or a run folder) for evaluation."""
    from .architecture import load_checkpoint

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return load_checkpoint(model_dir, device=device)


def evaluate(model_dir: str | Path, data: str | Path, opts: EvalOptions = EvalOptions()) -> dict:
    dataset = load_speech_dataset(data, opts.split)
    if opts.noisy:  # a noisy validation set that leaves the test splits unread (the same draw every time: seeded)
        from .corpus.augment import conditions
        from .data import noisy_copy

        labels = dataset["augment"][:opts.limit] if "augment" in dataset.column_names else []
        if labels and all(conditions(x)[0] != "no noise" for x in labels):
            raise ValueError(f"--noisy: every clip of {opts.split} already carries noise (its effect labels, e.g. "
                             f"{labels[0]!r}); the noisy copy would add the effects a second time — drop --noisy")
        dataset = noisy_copy(dataset.select(range(len(dataset) if opts.limit is None else min(opts.limit, len(dataset)))))
    model, processor = load_model(model_dir)
    if opts.long:  # several sentences per window (the model's, at most 10 s, as test_long), while test_long stays
        from .data import long_copy  # unread; --limit counts the clips joined

        dataset = long_copy(dataset.select(range(len(dataset) if opts.limit is None else min(opts.limit, len(dataset)))),
                            max_seconds=min(10.0, window_seconds(model)))
    report = evaluate_model(model, processor, dataset, opts, desc=f"eval {Path(str(model_dir)).name}")
    return {"model": str(model_dir), "data": str(data), "split": opts.split, "noisy": opts.noisy, "long": opts.long} | report
