"""Model registry: one module per model, each a whole model (`Architecture`): its own parameters,
body, head order, smallest input and pretrained-weights loading. Every model takes float32 images
in [0, 1] (the pipeline's contract) and ends in the same 37-vote head (`common`).

Importing this package does not load Keras, so configuration can validate against it.
To add a model: a module here with an `ARCHITECTURE` (found by `_discover`; its own parameters'
names must not repeat another config field's, which `config` checks at import).
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import typing
from dataclasses import dataclass

from gz_experiments.errors import ConfigError
from gz_experiments.models.architecture import Architecture

if typing.TYPE_CHECKING:
    import keras

# Modules of this package that are not models (the shared head and layers load Keras).
NOT_MODELS = {"architecture", "common", "layers"}


def _discover() -> dict[str, Architecture]:
    found = [importlib.import_module(f"{__name__}.{info.name}").ARCHITECTURE
             for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name)
             if info.name not in NOT_MODELS and not info.name.startswith("_")]
    return {a.name: a for a in found}


ARCHITECTURES: dict[str, Architecture] = _discover()
# The type of `ModelConfig.body`: any model's own parameters.
BodyConfig = typing.Union[tuple(a.config for a in ARCHITECTURES.values())]


@dataclass(frozen=True)
class ModelConfig:
    architecture: str = "cnn"              # a name in gz_experiments.models.ARCHITECTURES
    # The architecture's own parameters (filters, weights, global_pool, …), declared in its module
    # under gz_experiments/models/; None: its defaults. Set by their flat names like any other.
    body: BodyConfig | None = None
    dense: tuple[int, ...] = (512,)
    dropout: float = 0.5
    output: str = "sigmoid"                # sigmoid | tree (Dieleman et al. 2015 constraint)
    tree_warmup_epochs: int = 0            # output=tree: ramp from plain ReLU to the tree over k epochs

    def __post_init__(self):   # a changed architecture brings its own parameters (see body_config)
        object.__setattr__(self, "body", body_config(self.architecture, self.body))


def get(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise ConfigError.not_a_choice("architecture", ARCHITECTURES, name)
    return ARCHITECTURES[name]


def body_config(architecture: str, body):
    """`body` as the architecture's own config: kept if it is one; otherwise its fields of the same
    name carried over (cnn → galaxy_cnn keeps `filters`) and the rest at the architecture's defaults."""
    wanted = get(architecture).config
    if type(body) is wanted:
        return body
    names = {f.name for f in dataclasses.fields(wanted)}
    carried = {} if body is None else {f.name: getattr(body, f.name) for f in dataclasses.fields(body)
                                       if f.name in names}
    return wanted(**carried)


def architectures_reading(field: str) -> list[str]:
    return [name for name, a in ARCHITECTURES.items() if field in {f.name for f in dataclasses.fields(a.config)}]


def check_input_size(cfg: ModelConfig, image_size: int) -> None:
    smallest = get(cfg.architecture).minimum_input_size(cfg.body)
    if image_size < smallest:
        raise ConfigError(f"image_size={image_size} is too small for {cfg.architecture} as configured "
                          f"({describe(cfg.body)}): use at least {smallest}")


def describe(body) -> str:
    """A body config as the user writes it: filters=32,64,128,128, kernel_size=3, …"""
    values = {f.name: getattr(body, f.name) for f in dataclasses.fields(body)}
    return ", ".join(f"{name}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for name, v in values.items())


def prepare_weights(cfg: ModelConfig):
    """What `build_model` needs to load pretrained weights (found or downloaded now, before any data
    work), or None."""
    return get(cfg.architecture).prepare_weights(cfg.body)


def build_model(cfg: ModelConfig, image_size: int, pretrained=None) -> keras.Model:
    """The Keras network of `cfg` for `image_size`² inputs, with `pretrained` (from
    `prepare_weights`) loaded."""
    from gz_experiments.models.common import build   # here, not at the top: it loads Keras
    check_input_size(cfg, image_size)
    return build(get(cfg.architecture), cfg, image_size, pretrained)
