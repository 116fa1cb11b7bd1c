"""``whisper-edge experiment --reuse RUN``: a variant of a finished experiment that starts from RUN's stages.

A recipe change in the pruning stage (a recovery learning rate, a schedule) does not need a new dense model: the
stages upstream of it are the same computation. ``reuse_stages`` links into OUT every finished stage of RUN whose
settings — all the config keys it depends on, compared with RUN/experiment.yaml — are the variant's too, and the
evaluations of those models when the variant's ``eval`` settings are RUN's (``eval.extra_validation``'s when it
names the same corpus). A stage whose settings differ is not
reused, nor is anything downstream of it: the variant computes it. Nothing in RUN is changed (large files are hard
links, and a finished stage is never written again; small files are copied)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import yaml

from .evaluation import XVAL_FILE
from .experiment_config import with_defaults
from .runtime.fsutil import atomic_write_json

__all__ = ["STAGES", "check_resume", "check_reuse", "reuse_stages", "reused_reference"]

# (path in OUT, what marks it finished, the model it holds in results.json, the stage it was computed from, the
# config keys its content depends on besides that stage's)
STAGES = (
    ("base", "base/config.json", "base (zero-shot)", None, ("model",)),
    ("dense", "dense/summary.json", "dense", "base", ("data", "build", "steps", "seed", "dense")),
    ("sgl", "sgl/summary.json", "sgl", "dense", ("start", "seed", "sgl")),
    ("teacher.npz", "teacher.npz", None, "dense", ("prune.distill", "prune.teacher_top_k")),
    # the ablation's record (its variants' models stay in RUN/ablation) and the pruned model: every prune setting
    # counts (the ablation's choices feed the rounds); a variant that changes only IMP, evaluation, export or the
    # bench takes both
    ("ablation.json", "ablation.json", None, "sgl", ("seed", "prune")),
    ("sgl-pruned", "sgl-pruned/report.json", "sgl+adaptive", "ablation.json", ("seed", "prune")),
)
LINK_FROM = 1 << 20  # files this large are hard-linked, smaller ones copied
RECORD = "reused.json"  # OUT/: what was reused from where


def _value(cfg: dict, key: str):
    """``key``'s value in an experiment config ("prune.distill": a section's key); a setting the config lacks is newer
    than the run that wrote it, which had the default (experiment_config.with_defaults)."""
    cfg = with_defaults(cfg) if isinstance(cfg, dict) else cfg
    for part in key.split("."):
        cfg = cfg.get(part) if isinstance(cfg, dict) else None
    return cfg


def _differ(a: dict, b: dict, keys) -> dict[str, tuple]:
    """The settings on which two experiment configs disagree, among ``keys``: {name: (a's value, b's value)}; a section
    (``prune``) is compared setting by setting and named by the ones that differ (``prune.targets``); the corpus folder
    compared as the folder it names (runs/corpus and /work/runs/corpus alike)."""
    def setting(cfg, key):
        v = _value(cfg, key)
        return str(Path(v).resolve()) if key == "data" and isinstance(v, str) else v
    out = {}
    for k in keys:
        va, vb = setting(a, k), setting(b, k)
        if va == vb:
            continue
        if isinstance(va, dict) and isinstance(vb, dict):
            out |= {f"{k}.{s}": (va.get(s), vb.get(s)) for s in sorted(set(va) | set(vb), key=str) if va.get(s) != vb.get(s)}
        else:
            out[k] = (va, vb)
    return out


def _link_tree(src: Path, dst: Path) -> None:
    """``src`` (a file or a folder) as ``dst``, built beside it and renamed into place."""
    for stale in dst.parent.glob(f".{dst.name}.reuse-*"):  # an invocation killed while it linked this stage
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    tmp = dst.with_name(f".{dst.name}.reuse-{os.getpid()}")
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
    for f in files:
        target = tmp if src.is_file() else tmp / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if f.stat().st_size >= LINK_FROM:
            try:
                os.link(f, target)
                continue
            except OSError:  # another file system: copied
                pass
        shutil.copy2(f, target)
    os.replace(tmp, dst)


def check_reuse(src: str | os.PathLike, out: str | os.PathLike) -> None:
    """Refuse a ``--reuse`` folder that is not another experiment's (before OUT is made)."""
    src, out = Path(src), Path(out)
    if src.resolve() == out.resolve():
        raise ValueError(f"--reuse {src} is the --out folder itself; give another experiment's folder")
    if not (src / "experiment.yaml").is_file():
        raise ValueError(f"--reuse {src}: not an experiment folder (no experiment.yaml); give a folder that "
                         f"`whisper-edge experiment --out` wrote")


def check_resume(out: str | os.PathLike, cfg: dict, remedy: str | None = None) -> None:
    """Refuse to continue OUT with settings that its finished stages were not made with (OUT/experiment.yaml is the last
    invocation's): a finished stage is never computed again, so the change would be silently ignored — a replication
    with ``--set seed=1`` in a folder whose dense model has seed 0 would report seed 0's models. Settings that only
    later stages read (IMP, evaluation, export, and pruning until the pruned model is finished) may change: those
    stages are computed as the new settings say."""
    out = Path(out)
    if not (out / "experiment.yaml").is_file():
        return
    before = yaml.safe_load((out / "experiment.yaml").read_text(encoding="utf-8")) or {}
    for path, done, _, _, keys in STAGES:
        if (out / done).exists() and (differ := _differ(before, cfg, keys)):
            raise ValueError(
                f"{out}: its finished stage {path} was made with other settings ({', '.join(f'{k}: {v[0]!r}' for k, v in differ.items())}; "
                f"this invocation: {', '.join(f'{k}: {v[1]!r}' for k, v in differ.items())}). " + (remedy or
                f"Give another --out for the new settings (--reuse {out} takes what still matches), or drop the --set "
                "that changes them"))


def reuse_stages(src: str | os.PathLike, out: Path, cfg: dict) -> dict:
    """Link RUN's finished stages whose settings match ``cfg`` into ``out`` (stages ``out`` has are left alone).

    Returns the record written to OUT/reused.json: {from, stages, not_reused: {stage: why}, evaluations}."""
    src, out = Path(src), Path(out)
    check_reuse(src, out)
    theirs = yaml.safe_load((src / "experiment.yaml").read_text(encoding="utf-8")) or {}
    before = json.loads((out / RECORD).read_text()) if (out / RECORD).is_file() else {}  # an earlier invocation's
    reused, skipped, mine = list(before.get("stages") or []), {}, set()  # mine: stages OUT computes (or computed) itself
    passed = {}  # stages neither run has: what depends on one depends on its upstream stage
    for path, done, _, upstream, keys in STAGES:
        while upstream in passed:
            upstream = passed[upstream]
        if (path == "teacher.npz" and not _value(cfg, "prune.distill")) or (  # the variant does not distil
                path == "ablation.json" and not (src / done).exists() and not (out / done).exists()):  # nor ablate
            passed[path] = upstream
            continue
        if (out / done).exists():  # reused by an earlier invocation, or OUT's own
            if path not in reused:
                mine.add(path)
            continue
        differ = _differ(theirs, cfg, keys)
        why = (f"{upstream} was not reused" if upstream in mine or upstream in skipped else
               f"{', '.join(differ)} differ{'s' if len(differ) == 1 else ''}" if differ else
               None if (src / done).exists() else f"not finished in {src}")
        if why:
            skipped[path] = why
            continue
        _link_tree(src / path, out / path)
        reused.append(path)
    models = {model for path, _, model, _, _ in STAGES if model and path in reused}
    evaluations = []
    ev_mine, ev_theirs = dict(cfg.get("eval") or {}), dict(theirs.get("eval") or {})
    xval_mine, xval_theirs = ev_mine.pop("extra_validation", None), ev_theirs.pop("extra_validation", None)
    if models and ev_mine == ev_theirs and (src / "results.json").is_file():  # extra_validation aside: its own file
        results = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else {}
        results.setdefault("models", {})
        for name, entry in (json.loads((src / "results.json").read_text()).get("models") or {}).items():
            if name in models and name not in results["models"]:
                path = next(p for p, _, m, _, _ in STAGES if m == name)
                results["models"][name] = entry | {"path": str(out / path / ("model" if path != "base" else ""))}
                evaluations.append(name)
        if evaluations:
            atomic_write_json(out / "results.json", results)
        xval = json.loads((src / XVAL_FILE).read_text()) if xval_mine and xval_mine == xval_theirs and (src / XVAL_FILE).is_file() else {}
        taken = {k: v for k, v in (xval.get("models") or {}).items() if k in models}  # eval.extra_validation's
        if taken and not (out / XVAL_FILE).is_file():
            atomic_write_json(out / XVAL_FILE, xval | {"models": taken})
            evaluations.append(f"{', '.join(taken)} on {xval['corpus']}")
    evaluations = list(before.get("evaluations") or []) + evaluations
    record = {"from": str(src), "stages": reused, "not_reused": skipped, "evaluations": evaluations}
    atomic_write_json(out / RECORD, record)
    for path in reused:
        print(f"[experiment] {path}: reused from {src}", flush=True)
    for path, why in skipped.items():
        print(f"[experiment] {path}: not reused from {src} ({why})", flush=True)
    return record



def reused_reference(out: Path, cfg: dict) -> tuple[float, str] | None:
    """The dense model's validation WER that RUN's gradual pruning measured (RUN/sgl-pruned/reference.json), when OUT
    took RUN's dense model (so the same corpus) and validates on as many clips (``prune.eval_limit``):
    (WER, where it comes from); None otherwise. Spares a variant one validation of the dense model."""
    rec = json.loads((Path(out) / RECORD).read_text()) if (Path(out) / RECORD).is_file() else {}
    if "dense" not in (rec.get("stages") or []):
        return None
    src = Path(rec["from"])
    ref = src / "sgl-pruned" / "reference.json"
    if not ref.is_file() or not (src / "experiment.yaml").is_file():
        return None
    theirs = yaml.safe_load((src / "experiment.yaml").read_text(encoding="utf-8")) or {}
    if _value(theirs, "prune.eval_limit") != _value(cfg, "prune.eval_limit"):
        return None
    return float(json.loads(ref.read_text())["val_wer"]), f"given ({src}'s, on the same dense model and clips)"
