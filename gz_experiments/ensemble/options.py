"""The ensemble's options, read and checked before any model is downloaded or TensorFlow loads."""
from __future__ import annotations

from dataclasses import dataclass

from gz_experiments.errors import ConfigError


@dataclass(frozen=True)
class SplitChoice:
    """With `data_dir`: score on the test part of this split instead of every image."""
    n_train: int | None
    n_val: int
    n_test: int
    split_seed: int


@dataclass(frozen=True)
class EnsembleOptions:
    models: tuple[str, ...] = ()      # member URIs; or, empty, the best runs of `approach`:
    experiment: str | None = None
    approach: str | None = None
    top_k: int = 3
    data_fingerprint: str | None = None
    data_dir: str | None = None       # score on this folder instead of the members' test split
    split: SplitChoice | None = None  # with data_dir: only this split's test part
    tta: bool = True
    register: str | None = None
    skip_bad_images: bool = False
    # fit: convex weights with the lowest validation RMSE (members' common validation split); mean: 1/n each
    blend: str = "fit"


UNSET = ("", "none")
SPLIT_DEFAULTS = {"n_train": "8000", "n_val": "2000", "n_test": "2000", "split_seed": "42"}   # training's
BLENDS = ("fit", "mean")
OPTIONS = ("models", "experiment", "approach", "top_k", "data_fingerprint", "data_dir", "tta", "register",
           "skip_bad_images", "blend", *SPLIT_DEFAULTS)
USAGE = ("ensemble models=<uri>,<uri>[,…] | experiment=<name> approach=<approach> [top_k=3] [data_fingerprint=…]; "
         "[data_dir=<folder> [n_train=… n_val=… n_test=… split_seed=…]] [tta=true] [register=<name>] "
         "[skip_bad_images=false] [blend=fit|mean]")


def parse_options(given: dict[str, str]) -> EnsembleOptions:
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"unknown ensemble parameter(s) {', '.join(unknown)}; {USAGE}")
    value = {k: None if v.strip().lower() in UNSET else v.strip() for k, v in given.items()}
    models = tuple(u.strip() for u in (value.get("models") or "").split(",") if u.strip())
    if bool(models) == bool(value.get("experiment") or value.get("approach")):
        raise ConfigError(f"give either models=… or experiment=… with approach=…; {USAGE}")
    if not models and not (value.get("experiment") and value.get("approach")):
        raise ConfigError(f"experiment=… and approach=… go together; {USAGE}")
    if models and len(models) < 2 or len(set(models)) < len(models):
        raise ConfigError(f"models needs at least 2 different model URIs; got {', '.join(models)}")
    split_keys = [k for k in SPLIT_DEFAULTS if value.get(k) is not None]
    if split_keys and not value.get("data_dir"):
        raise ConfigError(f"{', '.join(split_keys)} choose a split of data_dir: give data_dir=<folder> too")
    return EnsembleOptions(
        models=models, experiment=value.get("experiment"), approach=value.get("approach"),
        top_k=_integer("top_k", value.get("top_k") or "3", least=1), data_fingerprint=value.get("data_fingerprint"),
        data_dir=value.get("data_dir"), split=_split_choice(value) if split_keys else None,
        tta=_boolean("tta", value.get("tta") or "true"), register=value.get("register"),
        skip_bad_images=_boolean("skip_bad_images", value.get("skip_bad_images") or "false"),
        blend=_choice("blend", value.get("blend") or "fit", BLENDS))


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    if raw.lower() not in choices:
        raise ConfigError(f"parameter {name!r} must be one of {', '.join(choices)}, got {raw!r}")
    return raw.lower()


def _split_choice(value: dict) -> SplitChoice:
    raw = {k: value.get(k) or default for k, default in SPLIT_DEFAULTS.items()}
    return SplitChoice(n_train=None if raw["n_train"].lower() == "all" else _integer("n_train", raw["n_train"], 1),
                       n_val=_integer("n_val", raw["n_val"], 0), n_test=_integer("n_test", raw["n_test"], 1),
                       split_seed=_integer("split_seed", raw["split_seed"], 0))


def _integer(name: str, raw: str, least: int) -> int:
    try:
        number = float(raw)   # MLflow hands float parameters over as e.g. "3.0"
    except ValueError:
        number = float("nan")
    if not number.is_integer() or number < least:
        raise ConfigError(f"parameter {name!r} must be a whole number ≥ {least}, got {raw!r}")
    return int(number)


def _boolean(name: str, raw: str) -> bool:
    words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    if raw.lower() not in words:
        raise ConfigError(f"parameter {name!r} must be true or false, got {raw!r}")
    return words[raw.lower()]
