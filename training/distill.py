"""Distillation from the dense fine-tuned model, paid once: the teacher's top-k logits cached on disk.

The corpus is fixed, so the teacher's decoder outputs on every training utterance (teacher-forced on the
reference tokens, the clean audio) are computed once by :func:`build_teacher_cache` and kept in one ``.npz``
file: per label token the ``top_k`` largest logits and their token ids (float16 / int32, 9.8 MB for the
default corpus). A training step then pays nothing for the teacher: :class:`Distiller` reads the rows of the
batch and adds a KL term on the student's logits,

    loss = (1 − α) · CE(student, reference) + α · T² · KL(teacher_top-k(T) ‖ student(T)),

where the teacher's distribution is its top-k logits renormalized at temperature T. The student sees the
augmented audio (noise, reverb, speed …) while the teacher saw the clean clip: what is distilled is the clean
prediction, a target that stays right when the input gets harder. Clips the augmentation concatenated with
others (new transcript) and clips whose label length differs from the cached one are trained by CE alone.

A cache is tied to its corpus and vocabulary by a hash of every cached row's label tokens; one made for another
corpus or tokenizer is refused with a message that names both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["DistillConfig", "TeacherCache", "TeacherCacheError", "Distiller", "build_teacher_cache", "label_ids"]

log = logging.getLogger("whisper_edge")

CACHE_FORMAT = "whisper-edge-teacher-cache/1"


class TeacherCacheError(ValueError):
    """A teacher cache that cannot serve this run (other corpus, other vocabulary, damaged file)."""


@dataclass(frozen=True)
class DistillConfig:
    teacher: str | None = None  # a teacher cache (.npz, `whisper-edge distill`); None: no distillation
    alpha: float = 0.25  # weight of the KL term (1 − alpha on the reference cross-entropy); 0.25 chosen on validation (docs/pruning.md)
    temperature: float = 1.0

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"distill.alpha must be within [0, 1], got {self.alpha}")
        if self.temperature <= 0:
            raise ValueError(f"distill.temperature must be > 0, got {self.temperature}")


def label_ids(tokenizer, text: str, max_label_tokens: int, sot: int) -> list[int]:
    """The label tokens of one transcript exactly as the training collator makes them."""
    ids = tokenizer(text).input_ids[: max_label_tokens + 1]
    return ids[1:] if ids and ids[0] == sot else ids


def _labels_hash(tokenizer, sentences: list[str], max_label_tokens: int, sot: int, language: str) -> str:
    tokenizer.set_prefix_tokens(language=language, task="transcribe", predict_timestamps=False)  # as the collator does
    h = hashlib.sha256()
    for s in sentences:
        h.update(np.asarray(label_ids(tokenizer, s, max_label_tokens, sot), np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()


@torch.no_grad()
def build_teacher_cache(teacher_dir, data, out, *, top_k: int = 16, batch_size: int = 8, language: str = "hi",
                        max_label_tokens: int = 200, split: str = "train", bf16: bool | None = None) -> Path:
    """Run the teacher once over ``split`` of ``data`` and write its top-k logits to ``out`` (atomically).
    ``bf16``: the forward under bfloat16 autocast (None: where the CPU has it natively, about 1.6× faster)."""
    from tqdm.auto import tqdm

    from ..runtime.features import window_samples, window_seconds
    from .architecture import load_checkpoint
    from .batches import SpeechCollator, usable_rows
    from .data import load_speech_dataset, row_audio
    from .precision import cpu_has_bf16

    out = Path(out)
    if top_k < 1:
        raise ValueError(f"top_k must be ≥ 1, got {top_k}")
    model, processor = load_checkpoint(teacher_dir)
    model.eval()
    ds = load_speech_dataset(data, split)
    audio_ctx = model.config.max_source_positions
    rows = usable_rows(ds, window_seconds(audio_ctx), split)
    collate = SpeechCollator(processor, audio_ctx, language, max_label_tokens)
    sentences = ds["sentence"]
    bf16 = cpu_has_bf16() and not torch.cuda.is_available() if bf16 is None else bf16
    ids_parts, logit_parts, offsets = [], [], [0]
    for k in tqdm(range(0, len(rows), batch_size), desc="teacher logits", unit="batch"):
        chunk = rows[k:k + batch_size]
        batch = collate([(row_audio(ds[i]["audio"]), sentences[i]) for i in chunk])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_features=batch["input_features"], labels=batch["labels"]).logits
        top = logits.float().topk(top_k, dim=-1)
        for b in range(len(chunk)):
            n = int((batch["labels"][b] != -100).sum())
            ids_parts.append(top.indices[b, :n].to(torch.int32).numpy())
            logit_parts.append(top.values[b, :n].to(torch.float16).numpy())
            offsets.append(offsets[-1] + n)
    meta = {"format": CACHE_FORMAT, "teacher": str(teacher_dir), "corpus": str(data), "split": split, "rows": len(rows),
            "vocab_size": int(model.config.vocab_size), "top_k": top_k, "audio_ctx": audio_ctx, "language": language,
            "max_label_tokens": max_label_tokens, "window_samples": window_samples(audio_ctx),
            "labels_sha256": _labels_hash(processor.tokenizer, [sentences[i] for i in rows], max_label_tokens, collate.sot,
                                              language)}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}.npz")
    np.savez(tmp, rows=np.asarray(rows, np.int64), offsets=np.asarray(offsets, np.int64),
             ids=np.concatenate(ids_parts), logits=np.concatenate(logit_parts), meta=np.asarray(json.dumps(meta)))
    os.replace(tmp, out)
    log.info("teacher cache: %d utterances, %d tokens, top-%d → %s", len(rows), offsets[-1], top_k, out)
    return out


class TeacherCache:
    """The cached teacher outputs, indexed by dataset row."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise TeacherCacheError(f"teacher cache {self.path} not found; build it with "
                                    "`whisper-edge distill --teacher RUN/dense/model --data CORPUS --out FILE`")
        try:
            z = np.load(self.path, allow_pickle=False)
            self.meta = json.loads(str(z["meta"]))
            self.ids, self.logits, self.offsets = z["ids"], z["logits"], z["offsets"]
            rows = z["rows"]
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise TeacherCacheError(f"teacher cache {self.path} is damaged ({exc}); delete it and build it again") from None
        if self.meta.get("format") != CACHE_FORMAT:
            raise TeacherCacheError(f"{self.path} is not a whisper-edge teacher cache (format {self.meta.get('format')!r})")
        self.index = {int(r): i for i, r in enumerate(rows)}

    def check(self, *, tokenizer, sentences: list[str], vocab_size: int, max_label_tokens: int, data, sot: int) -> None:
        """Refuse a cache made for another corpus or vocabulary; the message names both."""
        m = self.meta
        rows = sorted(self.index)
        if vocab_size != m["vocab_size"]:
            raise TeacherCacheError(f"teacher cache {self.path} holds logits over a {m['vocab_size']}-token vocabulary "
                                    f"(teacher {m['teacher']}), but this model has {vocab_size}: build a cache with a teacher "
                                    "of this model's vocabulary")
        mine = None
        if rows and rows[-1] < len(sentences):
            mine = _labels_hash(tokenizer, [sentences[r] for r in rows], m["max_label_tokens"], sot, m["language"])
        if mine != m["labels_sha256"]:
            raise TeacherCacheError(f"teacher cache {self.path} was made for corpus {m['corpus']} ({m['rows']} {m['split']} "
                                    f"utterances, teacher {m['teacher']}); this run trains on {data} ({len(sentences)} "
                                    "utterances) whose transcripts or tokens differ: build a cache for this corpus")
        if max_label_tokens != m["max_label_tokens"]:
            log.warning("teacher cache made with max_label_tokens %d, this run uses %d: truncated labels train by CE alone",
                        m["max_label_tokens"], max_label_tokens)

    def targets(self, row: int) -> tuple[np.ndarray, np.ndarray] | None:
        i = self.index.get(int(row))
        if i is None:
            return None
        s, e = self.offsets[i], self.offsets[i + 1]
        return self.ids[s:e], self.logits[s:e]


class Distiller:
    """The KL term of a training step, from cached teacher outputs."""

    def __init__(self, cache: TeacherCache, cfg: DistillConfig):
        self.cache, self.cfg = cache, cfg
        self.k = int(cache.meta["top_k"])

    def kl(self, logits: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor) -> torch.Tensor | None:
        """Mean over the covered label tokens of T²·KL(teacher ‖ student) restricted to the teacher's top-k.
        None when no clip of the batch has teacher targets."""
        B, W = labels.shape
        ids = torch.zeros(B, W, self.k, dtype=torch.long)
        tl = torch.zeros(B, W, self.k)
        mask = torch.zeros(B, W, dtype=torch.bool)
        for b, r in enumerate(rows.tolist()):
            t = self.cache.targets(r) if r >= 0 else None
            n = int((labels[b] != -100).sum())
            if t is None or len(t[0]) != n or n > W:
                continue
            ids[b, :n] = torch.from_numpy(t[0].astype(np.int64))
            tl[b, :n] = torch.from_numpy(t[1].astype(np.float32))
            mask[b, :n] = True
        if not bool(mask.any()):
            return None
        T = self.cfg.temperature
        dev = logits.device
        p = torch.softmax(tl[mask].to(dev) / T, dim=-1)
        logq = torch.log_softmax(logits[mask].float() / T, dim=-1).gather(-1, ids[mask].to(dev))
        return (p * (torch.log(p.clamp_min(1e-12)) - logq)).sum(-1).mean() * T * T

    def loss(self, ce: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        kl = self.kl(logits, labels, rows) if rows is not None else None
        if kl is None:
            return ce
        a = self.cfg.alpha
        return (1 - a) * ce + a * kl
