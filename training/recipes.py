"""Training recipes: YAML files validated into dataclasses (an unknown key or a bad value is an error
that names the field)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .augment import AugmentConfig
from .distill import DistillConfig
from .sgl import SGLConfig

__all__ = ["Recipe", "IMPConfig", "RecipeError", "load_recipe", "recipe_path", "BUILTIN_RECIPES"]

BUILTIN_RECIPES = ("dense", "sgl", "imp")
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "recipes"
# A built-in recipe's text as this process first read it: a long experiment keeps the recipes it started with when
# the package is upgraded or edited under it, as it keeps the code it imported (session 35: recipes/dense.yaml gained
# a field while an experiment ran, and its next stage — a process whose Recipe had no such field — stopped with
# "unknown recipe key"). A recipe given as a file path is read every time.
_BUILTIN_TEXT: dict[str, str] = {}


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the field."""


@dataclass(frozen=True)
class IMPConfig:
    target_sparsity: float = 0.35  # share of prunable weights set to zero at the end
    rounds: int = 4
    structured: bool = False  # True: prune whole heads/channels by group norm instead of single weights
    # each round's sparsity, given (e.g. the structured rounds' shares, to compare at matched counts); None: the
    # geometric schedule to target_sparsity in `rounds` rounds
    sparsities: list[float] | None = None
    # each round's steps (uneven rounds: e.g. more steps at the share the product targets); None: max_steps / rounds
    round_steps: list[int] | None = None
    # True: the learning rate warms up again and decays to 0 within each round (warmup_steps, at most a fifth of
    # the round), as each structured round does as its own run; False: one warmup and one decay over max_steps
    lr_per_round: bool = False

    def __post_init__(self):
        if not 0.0 < self.target_sparsity < 1.0:
            raise ValueError(f"imp.target_sparsity must be within (0, 1), got {self.target_sparsity}")
        if self.rounds < 1:
            raise ValueError(f"imp.rounds must be ≥ 1, got {self.rounds}")
        if self.sparsities is not None:
            sp = [float(x) for x in self.sparsities]
            if not sp or any(not 0 < x < 1 for x in sp) or sp != sorted(set(sp)):
                raise ValueError(f"imp.sparsities must be increasing shares within (0, 1), got {sp}")
            object.__setattr__(self, "sparsities", sp)
        if self.round_steps is not None:
            rs = [int(x) for x in self.round_steps]
            n = len(self.sparsities) if self.sparsities is not None else self.rounds
            if len(rs) != n or any(x < 1 for x in rs):
                raise ValueError(f"imp.round_steps must hold one step count ≥ 1 per round ({n} rounds), got {rs}")
            object.__setattr__(self, "round_steps", rs)


@dataclass(frozen=True)
class Recipe:
    method: str = "dense"  # dense | sgl | imp
    max_steps: int = 200
    batch_size: int = 8
    grad_accum: int = 1
    learning_rate: float = 1e-5
    warmup_steps: int = 20
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    mixed_precision: str = "auto"  # auto | no | fp16 | bf16
    audio_ctx: int | None = None  # encoder positions (1500 = 30 s); None keeps the model's
    # share of batches encoded in a window sized to their clips (training/context.py); None: 0.5 when the model was
    # trained for it (later stages keep it trained), else 0
    dynamic_ctx: float | None = None
    freeze_encoder: bool = False
    language: str = "hi"
    max_label_tokens: int = 200
    eval_every: int = 50
    eval_limit: int = 48
    eval_batch_size: int = 16
    save_every: int = 50
    keep_checkpoints: int = 2
    snapshot_every: int = 0  # > 0: also keep the model every that many steps in OUT/snapshots/step-N (IMP's rounds)
    # steps at which to validate / keep a snapshot besides the *_every ones (IMP's uneven rounds end there)
    eval_at: list[int] | None = None
    snapshot_at: list[int] | None = None
    select: str = "best"  # best (lowest validation WER) | last
    # ema > 0: every validation and written model uses an exponential moving average of the weights with this decay
    # (training/ema.py; warmed up over the first 9/(1−ema) steps, so in a short run an average over about its last 10 %
    # of steps); 0: the weights as trained. Not with SGL
    ema: float = 0.0
    seed: int = 0
    # {"column=value": factor}: training clips whose corpus column (engine, voice_group …) has that value are drawn
    # factor times as often (an integer ≥ 1); None: every clip alike
    oversample: dict | None = None
    num_workers: int = 0
    sgl: SGLConfig = field(default_factory=SGLConfig)
    imp: IMPConfig = field(default_factory=IMPConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # on-the-fly augmentation (training/augment.py)
    distill: DistillConfig = field(default_factory=DistillConfig)  # KL to cached teacher logits (training/distill.py)

    def __post_init__(self):
        checks = {
            "method": self.method in ("dense", "sgl", "imp"),
            "max_steps": self.max_steps >= 1, "batch_size": self.batch_size >= 1, "grad_accum": self.grad_accum >= 1,
            "learning_rate": 0 < self.learning_rate < 1, "warmup_steps": self.warmup_steps >= 0,
            "weight_decay": self.weight_decay >= 0, "max_grad_norm": self.max_grad_norm >= 0,
            "mixed_precision": self.mixed_precision in ("auto", "no", "fp16", "bf16"),
            "audio_ctx": self.audio_ctx is None or 1 <= self.audio_ctx <= 1500, "dynamic_ctx": self.dynamic_ctx is None or 0 <= self.dynamic_ctx <= 1,
            "max_label_tokens": 8 <= self.max_label_tokens <= 448, "eval_every": self.eval_every >= 0,
            "eval_limit": self.eval_limit >= 0, "eval_batch_size": self.eval_batch_size >= 1,
            "save_every": self.save_every >= 1, "keep_checkpoints": self.keep_checkpoints >= 1,
            "snapshot_every": self.snapshot_every >= 0,
            "eval_at": self.eval_at is None or all(1 <= int(x) <= self.max_steps for x in self.eval_at),
            "snapshot_at": self.snapshot_at is None or all(1 <= int(x) <= self.max_steps for x in self.snapshot_at),
            "select": self.select in ("best", "last"), "num_workers": self.num_workers >= 0,
            "ema": 0.0 <= self.ema < 1.0,
        }
        checks["oversample"] = self.oversample is None or isinstance(self.oversample, dict) and all(
            isinstance(k, str) and k.count("=") == 1 and all(k.split("=")) and isinstance(v, int)
            and not isinstance(v, bool) and 1 <= v <= 20 for k, v in self.oversample.items())
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            k = bad[0]
            raise RecipeError(f"recipe field {k!r} has an out-of-range value {getattr(self, k)!r}; see recipes/dense.yaml for the allowed values")
        if self.ema and self.method == "sgl":
            raise RecipeError(f"recipe field 'ema' ({self.ema}) cannot be used with method sgl: its proximal step sets "
                              f"groups to exact zeros that an average of the weights would bring back; set ema: 0")
        if self.imp.round_steps is not None and sum(self.imp.round_steps) != self.max_steps:
            raise RecipeError(f"imp.round_steps {self.imp.round_steps} add up to {sum(self.imp.round_steps)} steps, but "
                              f"max_steps is {self.max_steps}: make them agree")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def recipe_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.is_file():
        return p
    builtin = BUILTIN_DIR / f"{p.stem}.yaml"
    if p.suffix in ("", ".yaml") and p.stem in BUILTIN_RECIPES and builtin.is_file():
        return builtin
    from importlib import resources

    try:
        res = resources.files("whisper_edge.recipes") / f"{p.stem}.yaml"
        if res.is_file():
            return Path(str(res))
    except ModuleNotFoundError:
        pass
    raise FileNotFoundError(f"recipe {name_or_path} not found; give a YAML file or one of {', '.join(BUILTIN_RECIPES)}")


def _build(cls, data: dict, prefix: str):
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in names]
    if unknown:
        raise RecipeError(f"unknown recipe key '{prefix}{unknown[0]}'; allowed: {', '.join(names)}")
    kw = {}
    for k, v in data.items():
        if k == "sgl":
            v = _build(SGLConfig, v or {}, "sgl.")
        elif k == "imp":
            v = _build(IMPConfig, v or {}, "imp.")
        elif k == "augment":
            v = _build(AugmentConfig, v or {}, "augment.")
        elif k == "distill":
            v = _build(DistillConfig, v or {}, "distill.")
        else:
            ftype = str(names[k].type)
            if ftype.startswith("list"):
                if v is not None and not (isinstance(v, (list, tuple)) and all(isinstance(x, (int, float))
                                                                               and not isinstance(x, bool) for x in v)):
                    raise RecipeError(f"recipe field {prefix}{k} must be a list of numbers, got {v!r}")
            elif v is not None and ("float" in ftype and not isinstance(v, (int, float)) or
                                  ftype.startswith("int") and (isinstance(v, bool) or not isinstance(v, int)) or
                                  ftype == "bool" and not isinstance(v, bool)):
                raise RecipeError(f"recipe field {prefix}{k} must be {ftype}, got {v!r}")
            if "float" in ftype and isinstance(v, int):
                v = float(v)
        kw[k] = v
    try:
        return cls(**kw)
    except RecipeError:
        raise
    except (ValueError, TypeError) as exc:
        raise RecipeError(f"recipe: {exc}") from None


def _builtin_text(path: Path) -> str:
    if not _BUILTIN_TEXT:  # all of them at the first: the IMP recipe an experiment reads an hour in is the one it began with
        for name in BUILTIN_RECIPES:
            try:
                found = recipe_path(name)
            except FileNotFoundError:
                continue
            _BUILTIN_TEXT[str(found)] = found.read_text(encoding="utf-8")
    if str(path) not in _BUILTIN_TEXT:  # (setdefault would read the file on every call)
        _BUILTIN_TEXT[str(path)] = path.read_text(encoding="utf-8")
    return _BUILTIN_TEXT[str(path)]


def load_recipe(name_or_path: str | Path, overrides: dict | None = None) -> Recipe:
    """Load a recipe (built-in name or YAML path), apply ``overrides`` (dotted keys allowed), validate."""
    path = recipe_path(name_or_path)
    text = path.read_text(encoding="utf-8") if Path(name_or_path).is_file() else _builtin_text(path)  # else: by name
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path} must hold a mapping of recipe fields")
    for key, value in (overrides or {}).items():
        if "." in key:
            head, tail = key.split(".", 1)
            data.setdefault(head, {})[tail] = value
        else:
            data[key] = value
    if data.get("mixed_precision") is False:  # YAML 1.1 reads a bare `no` as false; `no` was meant
        data["mixed_precision"] = "no"
    return _build(Recipe, data, "")
