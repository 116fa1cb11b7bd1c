"""prune.confirm_on: the gradual rounds' selection confirmed on fresh validation clips (training/selection.py)."""

import pytest

from whisper_edge.evaluation import chosen_lines
from whisper_edge.training.selection import confirm_rounds

# errors per utterance (10 words each, 20 utterances) the fake reader gives each model
ERRORS = {"dense": 1, "r1": 1, "r2": 1, "r3": 2}
CANDIDATES = [{"round": i, "share": s, "model": f"r{i}"} for i, s in ((1, 0.25), (2, 0.353), (3, 0.45))]


def _reader(errors, calls):
    def read(model_dir, data, path, language):
        calls.append(str(model_dir))
        e = errors[str(model_dir)]
        return {"model": str(model_dir), "corpus": str(data), "wer": 100 * e / 10, "utterances": 20,
                "per_utterance": [[f"u{i}", e, 10] for i in range(20)]}
    return read


def test_the_largest_candidate_within_budget_on_the_confirmation_clips_is_selected(tmp_path):
    """Round 3 (45 %) passed the 144 clips but reads 10 points above the dense model on the fresh clips: round 2 is
    selected, round 1 is not read at all."""
    calls = []
    chosen, rec = confirm_rounds(CANDIDATES, dense_dir="dense", data="xval", budget=0.5, out=tmp_path,
                                 read=_reader(ERRORS, calls))
    assert chosen["round"] == 2 and rec["budget_met"] and rec["chosen_round"] == 2
    assert calls == ["dense", "r3", "r2"]
    assert [r["round"] for r in rec["readings"]] == [3, 2]
    assert rec["readings"][0]["diff"]["diff"] == pytest.approx(10.0) and rec["readings"][1]["diff"]["diff"] == 0.0
    text = "\n".join(chosen_lines({"chosen_round": 2, "budget_met": True, "confirmation": rec}))
    assert "Chosen: round 2 (within the budget on the confirmation clips)" in text
    assert "| 3 | 45.0 % | 20.00 | +10.00 [+10.00, +10.00] |" in text


def test_no_candidate_within_budget_selects_the_lowest_reading_and_says_so(tmp_path):
    errors = {"dense": 1, "r1": 3, "r2": 2, "r3": 4}
    chosen, rec = confirm_rounds(CANDIDATES, dense_dir="dense", data="xval", budget=0.5, out=tmp_path,
                                 read=_reader(errors, []))
    assert chosen["round"] == 2 and not rec["budget_met"] and [r["round"] for r in rec["readings"]] == [3, 2, 1]
    with pytest.raises(ValueError, match="at least one candidate"):
        confirm_rounds([], dense_dir="dense", data="xval", budget=0.5, out=tmp_path)
