"""Typed configuration: one `TrainConfig` for every approach; experiments override fields, never copy.

Overrides arrive as strings from MLflow, the CLI and Optuna; `override` parses and validates them
so a bad value fails with the parameter's name before any data is touched.
"""
from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass


class ConfigError(ValueError):
    """A parameter is unknown or has a bad value; the message names it and says what is allowed."""


@dataclass(frozen=True)
class AugmentConfig:
    """Random geometric augmentation, composed into one resampling per image."""
    rotation: float = 40.0     # degrees, uniform in ±rotation (report: rotation_range=40)
    shift: float = 0.2         # fraction of width/height (report: width/height_shift_range=0.2)
    # Keras' ImageDataGenerator reads shear_range in *degrees*, so the report's 0.2 is a
    # 0.2-degree shear; we keep its meaning to reproduce the report faithfully.
    shear: float = 0.2
    zoom: float = 0.2          # zoom factor uniform in [1-zoom, 1+zoom] per axis (report: zoom_range)
    hflip: bool = True
    vflip: bool = False


@dataclass(frozen=True)
class DataConfig:
    data_dir: str = "synthetic"   # a competition-layout folder/zips, or "synthetic" (built in)
    n_train: int | None = 8000    # None ("all"): every galaxy left after val and test
    n_val: int = 2000
    n_test: int = 2000
    split_seed: int = 42          # draws the split; apart from `seed` (initialisation, shuffling, augmentation)
    crop: int | None = None       # centre crop of the 424-pixel frame before resizing; None = whole
    image_size: int = 100
    skip_bad_images: bool = False
    augment: AugmentConfig | None = AugmentConfig()


@dataclass(frozen=True)
class ModelConfig:
    architecture: str = "cnn"              # key in gz_experiments.models.MODELS
    filters: tuple[int, ...] = (32, 64, 128, 128)
    kernel_size: int = 3                   # the report doesn't say; 3×3 is Keras tutorials' default
    dense: tuple[int, ...] = (512,)
    dropout: float = 0.5
    output: str = "sigmoid"                # sigmoid | tree (Dieleman et al. 2015 constraint)
    weights: str = "imagenet"              # resnet only: imagenet | none | path/to/file.weights.h5
    fine_tune_blocks: int | None = None    # resnet only: None trains all; k trains the last k stages
    batch_norm: bool = False
    global_pool: bool = False              # galaxy_cnn: global average pooling instead of flatten
    tree_warmup_epochs: int = 0            # output=tree: ramp from plain ReLU to the tree over k epochs


@dataclass(frozen=True)
class TrainConfig:
    approach: str = "cnn_full"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    epochs: int = 20
    batch_size: int = 100
    optimizer: str = "adamax"
    learning_rate: float = 0.001         # Keras' adamax default, which the report used
    lr_schedule: str = "constant"        # constant | cosine
    warmup_epochs: int = 0
    precision: str = "float32"           # float32 | mixed_bfloat16
    tta: bool = True                     # also log test_rmse_tta (8 dihedral views)
    seed: int = 42


CHOICES = {
    "output": ("sigmoid", "tree"),
    "optimizer": ("adamax", "adam", "sgd", "rmsprop"),
    "lr_schedule": ("constant", "cosine"),
    "precision": ("float32", "mixed_bfloat16"),
}
AT_LEAST_ONE = {"epochs", "batch_size", "image_size", "kernel_size", "n_train", "crop", "n_val", "n_test"}
NONE_WORDS = {"none", "null", "", "all"}
_INDEXED = re.compile(r"^(\w+)\[(\d+)\]$")   # filters[2]: one element of a tuple field


def _leaf_paths(cls, prefix=()) -> dict[str, tuple[tuple[str, ...], object]]:
    """Flat name -> (path of attribute names, declared type); flat names are unique by design."""
    paths = {}
    for name, hint in typing.get_type_hints(cls).items():
        sub = _dataclass_in(hint)
        if sub is not None:
            paths.update(_leaf_paths(sub, prefix + (name,)))
        if sub is None or name == "augment":   # augment=none switches augmentation off
            paths[name] = (prefix + (name,), hint)
    return paths


def _dataclass_in(hint):
    candidates = [hint, *typing.get_args(hint)]
    return next((c for c in candidates if dataclasses.is_dataclass(c)), None)


def _parse(name: str, raw, hint):
    """Turn an MLflow/CLI string (or a Python value) into the field's declared type."""
    args = typing.get_args(hint)
    if type(None) in args:
        if raw is None or (isinstance(raw, str) and raw.strip().lower() in NONE_WORDS):
            return None
        hint = next(a for a in args if a is not type(None))
    if dataclasses.is_dataclass(hint):
        raise ConfigError(f"parameter {name!r} can only be set to 'none' or 'on' here (set its fields instead)")
    if typing.get_origin(hint) is tuple:
        items = raw.replace("(", "").replace(")", "").split(",") if isinstance(raw, str) else raw
        return tuple(_parse(name, i, int) for i in items if str(i).strip())
    try:
        if hint is bool:
            if isinstance(raw, str):
                return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}[raw.strip().lower()]
            return bool(raw)
        if hint is int:
            number = float(raw)
            if not number.is_integer():
                raise ValueError
            return int(number)
        return hint(raw)
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"parameter {name!r} must be {getattr(hint, '__name__', hint)}, got {raw!r}") from None


def _check(name: str, value) -> None:
    if name in CHOICES and value not in CHOICES[name]:
        raise ConfigError(f"parameter {name!r} must be one of {', '.join(CHOICES[name])}; got {value!r}")
    if name in AT_LEAST_ONE and value is not None and value < 1:
        raise ConfigError(f"parameter {name!r} must be at least 1, got {value}")
    if name == "split_seed" and value < 0:
        raise ConfigError(f"parameter 'split_seed' must be 0 or more, got {value}")
    if name == "dropout" and not 0 <= value < 1:
        raise ConfigError(f"parameter 'dropout' must be in [0, 1), got {value}")
    if name == "learning_rate" and not value > 0:
        raise ConfigError(f"parameter 'learning_rate' must be positive, got {value}")
    if name == "tree_warmup_epochs" and value < 0:
        raise ConfigError(f"parameter 'tree_warmup_epochs' must be 0 (tree from the start) or more, got {value}")
    if name in ("filters", "dense") and (not value or min(value) < 1):
        raise ConfigError(f"parameter {name!r} needs positive integers, e.g. 32,64,128; got {value!r}")


def _replace_at(config, path: tuple[str, ...], value):
    if len(path) == 1:
        return dataclasses.replace(config, **{path[0]: value})
    child = getattr(config, path[0])
    if child is None:   # setting e.g. rotation while augmentation is off switches it back on
        child = typing.get_type_hints(type(config))[path[0]]
        child = _dataclass_in(child)()
    return dataclasses.replace(config, **{path[0]: _replace_at(child, path[1:], value)})


def override(config: TrainConfig, params: dict | None = None, **more) -> TrainConfig:
    """Return a copy of `config` with flat-named parameters replaced, parsed and validated."""
    paths = _leaf_paths(type(config))
    for key, raw in {**(params or {}), **more}.items():
        if key == "subset":
            config = _whole_set(config, raw)
            continue
        indexed = _INDEXED.match(key)
        name = indexed.group(1) if indexed else key
        if name not in paths:
            raise ConfigError(f"unknown parameter {key!r}; known: {', '.join(sorted(paths))}")
        path, hint = paths[name]
        if indexed:
            current = list(_get(config, path))
            i = int(indexed.group(2))
            if i >= len(current):
                raise ConfigError(f"parameter {key!r}: {name} has only {len(current)} elements")
            current[i] = _parse(key, raw, int)
            value = tuple(current)
        elif name == "augment" and str(raw).strip().lower() == "on":   # as flat_params logs it
            value = _get(config, path) or _dataclass_in(hint)()
        else:
            value = _parse(key, raw, hint)
        _check(name, value)
        config = _replace_at(config, path, value)
    return config


def _whole_set(config: TrainConfig, raw) -> TrainConfig:
    """`subset=all`: train on every labelled galaxy not held out for val and test (61,578 − 4,000 on
    the full competition set), from the memory-mapped cache. Same as `n_train=all`."""
    if str(raw).strip().lower() != "all":
        raise ConfigError(f"parameter 'subset' takes only 'all' (every galaxy not in val/test); got {raw!r}: "
                          f"for a smaller training set pass n_train=N")
    return override(config, n_train="all")


def _get(config, path):
    for attr in path:
        config = getattr(config, attr)
    return config


def flat_params(config: TrainConfig) -> dict[str, object]:
    """Every parameter by its flat name, as MLflow logs it and `override` accepts it."""
    flat = {}
    for name, (path, _) in _leaf_paths(type(config)).items():
        try:
            value = _get(config, path)
        except AttributeError:   # a field of a switched-off sub-config (augment=none)
            continue
        if name == "augment":
            value = "on" if value is not None else "none"
        flat[name] = ",".join(map(str, value)) if isinstance(value, tuple) else value
    return flat


def known_parameters() -> list[str]:
    return sorted(_leaf_paths(TrainConfig))
