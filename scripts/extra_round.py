"""One more gradual round after an experiment: prune a round's model further, compensate, recover with distillation.

Session 9's 45 % point (docs/results.md) was measured with
    python scripts/extra_round.py runs/paper5 0.45 runs/s9/round45 --steps 40
The target is a share of the *dense* model's attention + FFN; the round's reference WER is the starting round's.
"""

import argparse
import json
from pathlib import Path

from whisper_edge.training.gradual import prune_gradual
from whisper_edge.training.pruning import AdaptiveOptions

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("experiment", type=Path, help="an experiment folder (its sgl-pruned/report.json and teacher.npz)")
p.add_argument("target", type=float, help="share of the dense model's attention + FFN removed after this round")
p.add_argument("out", type=Path)
p.add_argument("--steps", type=int, default=40)
p.add_argument("--data", default="runs/corpus")
a = p.parse_args()
rep = json.loads((a.experiment / "sgl-pruned" / "report.json").read_text())
last = rep["rounds"][-1]
dense_af = last["attention_ffn"] / (1 - last["share"])
if not last["share"] < a.target < 1:
    raise SystemExit(f"target must lie between the last round's share ({last['share']:.3f}) and 1, got {a.target}")
out = prune_gradual(last["model"], a.out, data=a.data, targets=(1 - (1 - a.target) / (1 - last["share"]),), steps=a.steps,
                    opts=AdaptiveOptions(compensate=True, ridge=0.01, calib_batches=8), teacher=str(a.experiment / "teacher.npz"),
                    wer_budget=0.5, eval_limit=96, recipe_overrides={"learning_rate": 1e-5, "distill.alpha": 0.5})
r = out["rounds"][0]
print(json.dumps({"share_of_dense": 1 - r["attention_ffn"] / dense_af, "val_wer_pruned": r.get("val_wer_pruned"),
                  "val_wer": r["val_wer"], "kept": r["kept"], "params": r["params"], "encoder_flops": r["encoder_flops"]}))
