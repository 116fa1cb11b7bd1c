"""Which round a gradual run selects, confirmed on fresh validation clips (``prune.confirm_on``).

The rounds are validated on the corpus's validation split (144 clips in the default corpus), and the selected round
was the largest within ``wer_budget`` of the dense model there. On 144 clips one reading carries about ±1 WER point,
and taking the largest of four rounds that pass favours the one whose reading was luckiest: runs/paper26's 45 % round
read +0.26 there and +1.21 [+0.56, +1.87] on the 792 test clips (docs/results.md, sessions 43–44).

With ``confirm_on`` (a corpus whose validation split no other choice of the run has seen, e.g. ``data build
--validation-only --exclude-corpus DATA``), the rounds within budget on the validation split are candidates; from the
largest down, each is read on the confirmation clips beside the dense model, and the first within ``wer_budget`` there
is selected. The readings were made on clips the candidates were not chosen on, so they are not biased by that choice.
When no candidate passes, the one that read lowest on the confirmation clips is selected and the budget is not met.
Each reading (and the dense model's) is kept in OUT/confirm/ as it is made: a killed run resumes.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["confirm_rounds"]


def _reading(model_dir, data, path: Path, language: str) -> dict:
    """WER and per-utterance [id, errors, words] of ``model_dir`` on ``data``'s validation split, cached in ``path``."""
    if path.is_file():
        rec = json.loads(path.read_text())
        if rec["model"] == str(model_dir) and rec["corpus"] == str(data):
            return rec
    from ..runtime.fsutil import atomic_write_json
    from ..runtime.metrics import scored
    from .evaluate import EvalOptions, evaluate

    rep = evaluate(model_dir, data, EvalOptions(split="validation", language=language))
    rec = {"model": str(model_dir), "corpus": str(data), "wer": rep["wer"], "utterances": rep["utterances"],
           "per_utterance": scored(rep)}
    atomic_write_json(path, rec)
    return rec


def confirm_rounds(candidates: list[dict], *, dense_dir, data, budget: float, out: Path, language: str = "hi",
                   read=_reading) -> tuple[dict, dict]:
    """(the selected round, the record of the readings). ``candidates``: the rounds within budget on the validation
    split (round.json dicts with ``round``, ``share``, ``model``), smallest share first. ``read(model_dir, data, path,
    language)`` reads a model on ``data``'s validation split (the default evaluates it; tests pass their own)."""
    from ..runtime.metrics import paired_by_id

    if not candidates:
        raise ValueError("confirm_rounds needs at least one candidate round")
    folder = Path(out) / "confirm"
    folder.mkdir(parents=True, exist_ok=True)
    dense = read(dense_dir, data, folder / "dense.json", language)
    readings, chosen = [], None
    for cand in sorted(candidates, key=lambda c: c["share"], reverse=True):
        rec = read(cand["model"], data, folder / f"round-{cand['round']}.json", language)
        diff = paired_by_id(dense["per_utterance"], rec["per_utterance"])
        readings.append({"round": cand["round"], "share": cand["share"], "wer": rec["wer"], "diff": diff})
        print(f"[prune] confirming round {cand['round']} ({100 * cand['share']:.1f} %) on {data}: WER {rec['wer']:.2f}, "
              f"dense {dense['wer']:.2f} ({rec['wer'] - dense['wer']:+.2f}; budget +{budget})", flush=True)
        if rec["wer"] <= dense["wer"] + budget:
            chosen = cand
            break
    met = chosen is not None
    if chosen is None:
        best = min(readings, key=lambda r: r["wer"])
        chosen = next(c for c in candidates if c["round"] == best["round"])
    record = {"corpus": str(data), "utterances": dense["utterances"], "dense_wer": dense["wer"], "budget": budget,
              "readings": readings, "chosen_round": chosen["round"], "budget_met": met}
    return chosen, record

