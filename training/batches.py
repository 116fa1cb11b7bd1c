"""Training batches: clips of a speech Dataset (augmented on the fly) collated into Whisper inputs and labels."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..runtime.audio import SAMPLE_RATE, AudioError
from ..runtime.features import window_samples
from .context import batch_positions
from .data import row_audio

__all__ = ["SpeechDataset", "SpeechCollator", "usable_rows", "oversampled"]

log = logging.getLogger("whisper_edge")


class SpeechDataset(torch.utils.data.Dataset):
    """Rows of a speech Dataset → (audio array, sentence); long or unreadable clips were filtered before.

    With an active ``augment`` config every load draws new effects, seeded by (seed, row, epoch): the training
    loop sets ``epoch``, so a resumed run draws exactly what an uninterrupted one would."""

    def __init__(self, dataset, rows: list[int], augment=None, seed: int = 0, max_samples: int | None = None,
                 with_rows: bool = False):
        self.dataset, self.rows = dataset, rows
        self.with_rows = with_rows  # items are (audio, sentence, dataset row or −1 when concatenated): distillation's key
        self.augment = augment if augment is not None and augment.active else None
        if self.augment is not None:  # read the user's noise / impulse-response folders now: reported once, up front
            self.augment.sounds("noise_dir"), self.augment.sounds("rir_dir")
        self.seed, self.max_samples = seed, max_samples
        self.epoch = 0

    def __len__(self):
        return len(self.rows)

    def _item(self, row: int) -> tuple[np.ndarray, str]:
        item = self.dataset[row]
        return row_audio(item["audio"]), item["sentence"]

    def __getitem__(self, i):
        wav, text = self._item(self.rows[i])
        row = self.rows[i]
        if self.augment is not None:
            from .augment import augment_clip

            rng = np.random.default_rng([self.seed, i, self.epoch])
            if self.augment.p_nospeech and rng.random() < self.augment.p_nospeech:
                from .augment import nonspeech_clip

                wav = nonspeech_clip(rng, self.max_samples or 16000 * 10)  # labelled <|nocaptions|> by the collator
                return (wav, "", -1) if self.with_rows else (wav, "")
            if rng.random() < self.augment.p_concat:
                wav, joined = self._concat(wav, text, rng)
                row, text = (row if joined == text else -1), joined
            others = lambda: [self._item(self.rows[j])[0] for j in rng.integers(0, len(self.rows), 3)]  # noqa: E731
            wav, _ = augment_clip(wav, self.augment, rng, others, self.max_samples)
        return (wav, text, row) if self.with_rows else (wav, text)

    def _concat(self, wav, text, rng):
        """Several sentences in one window (as real recordings have): 1–2 other training clips appended after
        0.2–0.8-s pauses while they fit the window; the transcripts are joined. Teaches the decoder to go on
        after the first sentence instead of ending the window there."""
        limit = self.max_samples or len(wav)
        parts, texts, total = [wav], [text], len(wav)
        for j in rng.integers(0, len(self.rows), int(rng.integers(1, 3))):
            other, sentence = self._item(self.rows[j])
            gap = np.zeros(int(rng.uniform(0.2, 0.8) * SAMPLE_RATE), np.float32)
            if total + len(gap) + len(other) > limit * 0.9 or len(" ".join(texts)) + len(sentence) > 240:
                break  # room for a speed change; labels well within max_label_tokens
            parts += [gap, other]
            texts.append(sentence)
            total += len(gap) + len(other)
        return np.concatenate(parts), " ".join(texts)


@dataclass
class SpeechCollator:
    processor: object
    audio_ctx: int
    language: str
    max_label_tokens: int
    dynamic: float = 0.0  # share of batches in a window sized to their clips (training/context.py)
    seed: int = 0

    def __post_init__(self):
        self.processor.tokenizer.set_prefix_tokens(language=self.language, task="transcribe", predict_timestamps=False)
        tok = self.processor.tokenizer
        self.sot = tok.convert_tokens_to_ids("<|startoftranscript|>")
        nospeech = [t for t in ("<|nospeech|>", "<|nocaptions|>") if tok.convert_tokens_to_ids(t) != tok.unk_token_id]
        # a window without speech: Whisper's own target, <|nocaptions|> right after <|startoftranscript|>
        self.nospeech_labels = [tok.convert_tokens_to_ids(nospeech[0]), tok.eos_token_id] if nospeech else None

    def __call__(self, batch):
        audios, texts = [b[0] for b in batch], [b[1] for b in batch]
        ctx = batch_positions([len(a) for a in audios], texts, self.audio_ctx, self.dynamic, self.seed)
        feats = self.processor.feature_extractor(list(audios), sampling_rate=SAMPLE_RATE, return_tensors="pt",
                                                 padding="max_length", max_length=window_samples(ctx),
                                                 truncation=True).input_features
        feats = feats[..., : 2 * ctx]
        ids = [self.processor.tokenizer(t).input_ids[: self.max_label_tokens + 1] for t in texts]
        ids = [x[1:] if x and x[0] == self.sot else x for x in ids]  # the model prepends <|startoftranscript|>
        ids = [self.nospeech_labels if t == "" and self.nospeech_labels else x for t, x in zip(texts, ids)]
        width = max(len(x) for x in ids)
        labels = torch.full((len(ids), width), -100, dtype=torch.long)
        for i, x in enumerate(ids):
            labels[i, : len(x)] = torch.tensor(x)
        out = {"input_features": feats, "labels": labels}
        if batch and len(batch[0]) == 3:  # SpeechDataset(with_rows=True): the rows a teacher cache is keyed by
            out["rows"] = torch.tensor([b[2] for b in batch], dtype=torch.long)
        return out


def usable_rows(dataset, window_s: float, desc: str) -> list[int]:
    """Rows whose audio decodes and fits the window (checked once, before training)."""
    rows, skipped = [], []
    for i in tqdm(range(len(dataset)), desc=f"checking {desc} audio", unit="utt", leave=False):
        audio = dataset[i]["audio"]
        try:
            wav = row_audio(audio)
        except (AudioError, OSError, TypeError) as exc:
            skipped.append(f"{audio.get('path') or i}: {exc}")
            continue
        if len(wav) / SAMPLE_RATE > window_s:
            skipped.append(f"{audio.get('path') or i}: {len(wav) / SAMPLE_RATE:.1f} s > {window_s:.0f}-s window")
            continue
        rows.append(i)
    if skipped:
        log.warning("%s: %d of %d clips left out (first: %s)", desc, len(skipped), len(dataset), skipped[0])
    if not rows:
        raise ValueError(f"no usable {desc} clip (all {len(dataset)} unreadable or longer than the {window_s:.0f}-s window)")
    return rows


def oversampled(dataset, rows: list[int], oversample: dict | None) -> list[int]:
    """``rows`` with each row whose column matches a key of ``oversample`` ({"column=value": factor}, the recipe field)
    appearing ``factor`` times: a recovery that hears more of one engine or voice group (docs/pruning.md). Only that
    column is read, not the audio."""
    if not oversample:
        return rows
    out = list(rows)
    for key, factor in oversample.items():
        column, value = key.split("=", 1)
        if column not in dataset.column_names:
            usable = ", ".join(c for c in dataset.column_names if c not in ("audio", "sentence"))
            raise ValueError(f"recipe field oversample {key!r}: the training split has no column {column!r}; "
                             f"its columns: {usable}")
        values = dataset[column]
        match = [r for r in rows if str(values[r]) == value]
        if not match:
            raise ValueError(f"recipe field oversample {key!r}: no training clip has {column} = {value!r}; its values: "
                             + ", ".join(sorted({str(v) for v in values})[:12]))
        out += match * (int(factor) - 1)
        log.info("oversample %s: %d of %d clips ×%d", key, len(match), len(rows), int(factor))
    return out
