"""Fine-tuning loop (dense, SGL, IMP) through Hugging Face Accelerate.

The same command runs on one CPU, one GPU, several GPUs (``accelerate launch``) or several
machines. Output folder layout::

    OUT/model/            the selected checkpoint (best validation WER, or last), save_pretrained folder
    OUT/last/             the final weights
                          (with the recipe's ``ema``, these and the snapshots hold the weights' moving average)
    OUT/snapshots/step-N/     the model at step N, with ``snapshot_every`` (IMP's rounds: one model per round)
    OUT/checkpoints/step-N/   full training state (model, optimizer, scheduler, RNG), written atomically; the newest
                              ``keep_checkpoints`` while it runs, the newest alone once it has finished
    OUT/log.csv           one row per optimizer step (loss, penalty, lr, sparsity, timings, validation WER)
    OUT/recipe.yaml       the recipe as run
    OUT/summary.json      what was run and measured

Running the same command again resumes from the newest complete checkpoint.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from ..runtime.features import window_samples, window_seconds
from ..runtime.fsutil import atomic_write_json, atomic_write_text, check_output, claim_folder
from .architecture import architecture_of, load_checkpoint, save_checkpoint, trim_audio_context
from .data import load_speech_dataset
from .ema import WeightAverage
from .evaluate import EvalOptions, evaluate_model
from .recipes import Recipe
from .batches import SpeechCollator, SpeechDataset, oversampled, usable_rows
from .context import INHERITED_SHARE, allow_short_windows, mark_dynamic, trained_dynamic
from .imp import imp_prune_, imp_schedule, lr_factor, prunable_weights, sparsity_report
from .methods import make_method
from .precision import fp32_forward, fresh_accelerate_state, mixed_precision

__all__ = ["train", "SpeechCollator", "prunable_weights", "imp_prune_", "imp_schedule", "sparsity_report"]

log = logging.getLogger("whisper_edge")

LOG_FIELDS = ["step", "epoch", "loss", "penalty", "lr", "step_seconds", "sgl_seconds", "zero_heads", "zero_channels",
              "weight_sparsity", "val_wer", "val_cer"]


# ---------------------------------------------------------------------------------------------- loop

def _checkpoints(ckpt_root: Path) -> list[tuple[int, Path]]:
    """OUT/checkpoints/step-N folders as (N, path), oldest first."""
    return sorted((int(p.name[5:]), p) for p in ckpt_root.glob("step-*") if p.name[5:].isdigit())


def _latest_checkpoint(ckpt_root: Path) -> Path | None:
    found = [p for _, p in _checkpoints(ckpt_root) if (p / "train_state.json").is_file()]
    return found[-1] if found else None


def train(model_dir: str | Path, data: str | Path, recipe: Recipe, out: str | Path, *,
          train_split: str = "train", eval_split: str = "validation", max_train: int | None = None,
          stop_after: int | None = None, stop_at_wer: float | None = None, label: str | None = None) -> dict:
    """Fine-tune ``model_dir`` on ``data`` with ``recipe``; resumes if ``out`` holds checkpoints.

    ``stop_after`` ends the run after that many steps of this invocation (used to test resuming).
    ``stop_at_wer`` ends it early at the first validation whose WER is at most this (a recovery that has won back
    what pruning cost stops there; the run then counts as finished, also when resumed).
    ``label`` names the progress bar (default ``train <method>``; a pruned model's recovery says so).
    """
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, set_seed

    out = Path(out)
    check_output(out, "run", inputs=[model_dir], resume=True)  # before any work: a user's folder is never touched
    ckpt_root = out / "checkpoints"
    logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)  # "Removed shared tensor" on every save: tied embeddings
    tb = _has_tensorboard()
    fresh_accelerate_state()
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),  # several CPU processes (torchrun / accelerate launch) then use gloo
        gradient_accumulation_steps=recipe.grad_accum, mixed_precision=mixed_precision(recipe.mixed_precision),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        log_with="tensorboard" if tb else None, project_dir=str(out) if tb else None,
    )
    main = accelerator.is_main_process
    set_seed(recipe.seed)
    if main:
        claim_folder(out, "run", inputs=[model_dir])
        prev = out / "recipe.yaml"
        if prev.is_file() and _latest_checkpoint(ckpt_root) is not None:
            old = _with_defaults(yaml.safe_load(prev.read_text()), Recipe().to_dict())  # fields added since keep defaults
            if old != recipe.to_dict():
                raise ValueError(f"{out} holds a run with a different recipe; resume with the same recipe or choose another --out")
        atomic_write_text(prev, yaml.safe_dump(recipe.to_dict(), sort_keys=False, allow_unicode=True))

    model, processor = load_checkpoint(model_dir, device=None)
    if recipe.audio_ctx and recipe.audio_ctx < model.config.max_source_positions:
        trim_audio_context(model, recipe.audio_ctx)
    elif recipe.audio_ctx and recipe.audio_ctx > model.config.max_source_positions:
        log.warning("the model's audio context is already %d positions; the recipe's audio_ctx %d is ignored",
                    model.config.max_source_positions, recipe.audio_ctx)
    model.config.use_cache = False
    model.generation_config.forced_decoder_ids = None
    if recipe.freeze_encoder:
        model.model.encoder.requires_grad_(False)
    audio_ctx = model.config.max_source_positions
    window_s = window_seconds(audio_ctx)

    train_ds = load_speech_dataset(data, train_split)
    if max_train:
        train_ds = train_ds.select(range(min(max_train, len(train_ds))))
    rows = oversampled(train_ds, usable_rows(train_ds, window_s, train_split), recipe.oversample)
    eval_ds = None
    if (recipe.eval_every or recipe.eval_at) and recipe.eval_limit:
        try:
            eval_ds = load_speech_dataset(data, eval_split)
        except (ValueError, FileNotFoundError, KeyError) as exc:
            log.warning("no validation split (%s): validation WER is not tracked", exc)

    dynamic = recipe.dynamic_ctx if recipe.dynamic_ctx is not None else (INHERITED_SHARE if trained_dynamic(model.config) else 0.0)
    collate = SpeechCollator(processor, audio_ctx, recipe.language, recipe.max_label_tokens, dynamic, recipe.seed)
    if dynamic:  # some batches come in shorter windows; the saved model says it was trained for them
        allow_short_windows(model)
        mark_dynamic(model.config)
    elif trained_dynamic(model.config):
        log.warning("%s was trained for the dynamic audio context but this recipe's dynamic_ctx is 0: this stage trains "
                    "full windows only (leave dynamic_ctx unset or give a share to keep the shorter ones trained)", model_dir)
    model.config.apply_spec_augment = recipe.augment.spec_augment  # applied by the model in training mode only
    model.config.mask_time_prob, model.config.mask_feature_prob = recipe.augment.mask_time_prob, recipe.augment.mask_feature_prob
    distiller = _distiller(recipe, processor, train_ds, model.config.vocab_size, data, collate.sot)
    train_set = SpeechDataset(train_ds, rows, recipe.augment, recipe.seed, window_samples(audio_ctx), with_rows=distiller is not None)
    dl = torch.utils.data.DataLoader(train_set, batch_size=recipe.batch_size, shuffle=True,
                                     collate_fn=collate, num_workers=recipe.num_workers, drop_last=len(rows) > recipe.batch_size,
                                     generator=torch.Generator().manual_seed(recipe.seed))
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "embed" in n or "norm" in n else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=recipe.learning_rate)

    starts = [s for s, _ in imp_schedule(recipe.imp.target_sparsity, recipe.imp.rounds, recipe.max_steps, recipe.imp.sparsities,
                                         recipe.imp.round_steps)] if recipe.method == "imp" and recipe.imp.lr_per_round else [0]

    def lr_lambda(step):
        return lr_factor(step, recipe.max_steps, recipe.warmup_steps, starts)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    # The scheduler is stepped once per optimizer step (not prepared: Accelerate would step it once per process).
    model, opt, dl = accelerator.prepare(model, opt, dl)
    accelerator.register_for_checkpointing(sched)
    raw = accelerator.unwrap_model(model)

    method = make_method(recipe)  # what dense, SGL or IMP add around the step (training/methods.py)
    method.setup(accelerator, raw, processor, train_ds, out)
    ema = WeightAverage(raw, recipe.ema) if recipe.ema else None  # the weights validated and written (training/ema.py)
    if ema is not None:
        accelerator.register_for_checkpointing(ema)

    def averaged():
        return ema.applied(raw, method.constrain) if ema is not None else contextlib.nullcontext(raw)

    # resume
    state = {"step": 0, "best_wer": None, "best_step": None, "last_wer": None, "imp_round": 0}
    eval_at, snapshot_at = {int(x) for x in recipe.eval_at or ()}, {int(x) for x in recipe.snapshot_at or ()}
    latest = _latest_checkpoint(ckpt_root)
    if latest is not None:
        accelerator.load_state(str(latest))
        state = json.loads((latest / "train_state.json").read_text())
        log.info("resuming from %s (step %d)", latest, state["step"])
        accelerator.print(f"resuming from {latest} at step {state['step']}")
    if tb:
        accelerator.init_trackers("train", config={k: v for k, v in recipe.to_dict().items() if not isinstance(v, dict)})

    steps_per_epoch = max(1, len(dl) // recipe.grad_accum)
    method.resume(raw, state)

    log_path = out / "log.csv"
    if main and not log_path.exists():
        with open(log_path, "w", newline="") as f:
            csv.writer(f).writerow(LOG_FIELDS)
    elif main:  # a run killed after its last checkpoint logged steps that will run again: drop them
        with open(log_path, newline="") as f:
            rows = list(csv.DictReader(f))
        kept = [r for r in rows if r.get("step", "").isdigit() and int(r["step"]) <= state["step"]]
        if len(kept) < len(rows):
            with open(log_path.with_suffix(".tmp"), "w", newline="") as f:
                w = csv.DictWriter(f, LOG_FIELDS)
                w.writeheader()
                w.writerows(kept)
            os.replace(log_path.with_suffix(".tmp"), log_path)

    bar = tqdm(total=recipe.max_steps, initial=state["step"], desc=label or f"train {recipe.method}", unit="step",
               disable=not main, dynamic_ncols=True)
    step, started = state["step"], state["step"]
    epoch = step // steps_per_epoch
    t_total = time.perf_counter()
    reached = stop_at_wer is not None and state["best_wer"] is not None and state["best_wer"] <= stop_at_wer
    while step < recipe.max_steps and not reached:
        dl.set_epoch(epoch)
        train_set.epoch = epoch  # the augmentation's draw (reproducible across a resume)
        skip = (step % steps_per_epoch) * recipe.grad_accum
        it = accelerator.skip_first_batches(dl, skip) if skip else dl
        t0 = time.perf_counter()
        losses = []
        for batch in it:
            method.before_batch(raw, step, state, accelerator.print)
            with accelerator.accumulate(model):
                batch_rows = batch.pop("rows", None)
                out_ = model(**batch)
                loss = out_.loss
                if distiller is not None:
                    loss = distiller.loss(loss, out_.logits, batch["labels"], batch_rows)
                penalty = method.penalty(raw)
                if penalty is not None:
                    loss = loss + penalty
                accelerator.backward(loss)
                if accelerator.sync_gradients and recipe.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), recipe.max_grad_norm)
                lr_used = sched.get_last_lr()[0]  # the rate of this step (the proximal step must use the same)
                opt.step()
                if accelerator.sync_gradients:
                    sched.step()
                opt.zero_grad(set_to_none=True)
            losses.append(out_.loss.detach().float().item())
            if not accelerator.sync_gradients:
                continue
            t_sgl = method.after_step(raw, lr_used)  # SGL's proximal step, IMP's masks
            if ema is not None:
                ema.update(raw)
            step += 1
            row = {"step": step, "epoch": epoch, "loss": float(np.mean(losses)), "lr": lr_used,
                   "step_seconds": time.perf_counter() - t0, "sgl_seconds": t_sgl,
                   "penalty": float(penalty.detach()) if penalty is not None else ""}
            losses = []
            validating = eval_ds is not None and ((recipe.eval_every and step % recipe.eval_every == 0) or step in eval_at
                                                  or step == recipe.max_steps)
            row.update(method.log(raw, step, validating or bool(recipe.eval_every and step % recipe.eval_every == 0)))
            if validating:
                with averaged():
                    rep = _validate(accelerator, raw, processor, eval_ds, recipe)
                    better = rep is not None and (state["best_wer"] is None or rep["wer"] < state["best_wer"])
                    if main and recipe.select == "best" and better:
                        save_checkpoint(raw, processor, out / "model", generation_config=raw.generation_config, overwrite=True)
                if rep is not None:
                    row.update(val_wer=rep["wer"], val_cer=rep["cer"])
                    state["last_wer"] = rep["wer"]
                    if better:
                        state["best_wer"], state["best_step"] = rep["wer"], step
                    bar.set_postfix(loss=f"{row['loss']:.3f}", val_wer=f"{rep['wer']:.1f}")
                    reached = stop_at_wer is not None and rep["wer"] <= stop_at_wer
                accelerator.wait_for_everyone()
            if main:
                with open(log_path, "a", newline="") as f:
                    csv.DictWriter(f, LOG_FIELDS).writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
                if tb:
                    accelerator.log({k: v for k, v in row.items() if isinstance(v, (int, float)) and k != "step"}, step=step)
            bar.update(1)
            if "val_wer" not in row:
                bar.set_postfix(loss=f"{row['loss']:.3f}")
            state["step"] = step
            if main and ((recipe.snapshot_every and step % recipe.snapshot_every == 0) or step in snapshot_at):
                with averaged():
                    save_checkpoint(raw, processor, out / "snapshots" / f"step-{step}", generation_config=raw.generation_config,
                                    overwrite=True)
            if step % recipe.save_every == 0 or step == recipe.max_steps or reached or (stop_after and step - started >= stop_after):
                _save_state(accelerator, ckpt_root, state, recipe.keep_checkpoints)
            if step >= recipe.max_steps or reached or (stop_after and step - started >= stop_after):
                if reached:
                    log.info("validation WER %.2f ≤ %.2f at step %d: stopping early", state["best_wer"], stop_at_wer, step)
                break
            t0 = time.perf_counter()
        else:
            epoch += 1
            continue
        break
    bar.close()
    if stop_after and step < recipe.max_steps and not reached:
        return {"stopped_at": step}

    accelerator.wait_for_everyone()
    summary = {}
    if main:
        raw.config.use_cache = True
        with averaged():
            save_checkpoint(raw, processor, out / "last", generation_config=raw.generation_config, overwrite=True)
            if recipe.select == "last" or not (out / "model" / "config.json").is_file():
                save_checkpoint(raw, processor, out / "model", generation_config=raw.generation_config, overwrite=True)
            final_sparsity = sparsity_report(raw)
        summary = {
            "model": str(model_dir), "data": str(data), "recipe": recipe.to_dict(), "steps": step,
            "seconds_this_run": round(time.perf_counter() - t_total, 1), "processes": accelerator.num_processes,
            "device": str(accelerator.device), "mixed_precision": accelerator.mixed_precision,
            "train_clips": len(rows), "best_wer": state["best_wer"], "best_step": state["best_step"], "last_wer": state.get("last_wer"),
            "selected": recipe.select, "stopped_early": bool(reached and step < recipe.max_steps), "final_sparsity": final_sparsity, "architecture": architecture_of(raw).to_dict(),
        }
        atomic_write_json(out / "summary.json", summary)
        # a finished run needs only its newest state (to continue with more steps): about 0.85 GB a Whisper-base
        # checkpoint, so an experiment's six training stages keep 5 GB less
        _drop_old_checkpoints(ckpt_root, 1)
    if tb:
        accelerator.end_training()
    return summary


def _with_defaults(d, defaults):
    if not isinstance(d, dict) or not isinstance(defaults, dict):
        return d
    return {k: _with_defaults(d[k], v) if k in d else v for k, v in defaults.items()} | {k: v for k, v in d.items() if k not in defaults}


def _distiller(recipe: Recipe, processor, train_ds, vocab_size: int, data, sot: int):
    """The distillation term of this run (None without ``distill.teacher``), its cache checked against the corpus."""
    if not recipe.distill.teacher or recipe.distill.alpha == 0:
        return None
    from .distill import Distiller, TeacherCache

    cache = TeacherCache(recipe.distill.teacher)
    cache.check(tokenizer=processor.tokenizer, sentences=train_ds["sentence"], vocab_size=vocab_size,
                max_label_tokens=recipe.max_label_tokens, data=data, sot=sot)
    return Distiller(cache, recipe.distill)


def _validate(accelerator, raw, processor, eval_ds, recipe: Recipe):
    if not accelerator.is_main_process:
        return None
    was_training = raw.training
    raw.config.use_cache = True
    opts = EvalOptions(split="validation", language=recipe.language, batch_size=recipe.eval_batch_size,
                       limit=recipe.eval_limit, max_new_tokens=recipe.max_label_tokens)
    with fp32_forward(raw):  # features and WER in fp32 (WhisperFeatureExtractor fails on bfloat16 tensors)
        rep = evaluate_model(raw, processor, eval_ds, opts, desc="validation")
    raw.config.use_cache = False
    raw.train(was_training)
    return rep


def _save_state(accelerator, ckpt_root: Path, state: dict, keep: int) -> None:
    """accelerator.save_state into a temporary folder, then rename (a kill leaves the previous one intact)."""
    final = ckpt_root / f"step-{state['step']}"
    tmp = ckpt_root / f".step-{state['step']}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp))
    except (RuntimeError, OSError) as exc:  # a full disk reads as torch's "[enforce fail …] unexpected pos …"
        shutil.rmtree(tmp, ignore_errors=True)
        free = shutil.disk_usage(ckpt_root).free / 2**20
        raise OSError(f"could not write the training checkpoint {final} ({str(exc).splitlines()[0][:120]}); "
                      f"{free:,.0f} MiB free on its disk: free space and run the same command again — training "
                      f"resumes from the last complete checkpoint in {ckpt_root}") from exc
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_json(tmp / "train_state.json", state)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _drop_old_checkpoints(ckpt_root, keep)
    accelerator.wait_for_everyone()


def _drop_old_checkpoints(ckpt_root: Path, keep: int) -> None:
    for _, p in _checkpoints(ckpt_root)[:-keep]:
        shutil.rmtree(p, ignore_errors=True)


def _has_tensorboard() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None
