"""`gz-experiments synthetic`: a generated data set in the competition's layout."""
from __future__ import annotations

from dataclasses import dataclass

from gz_experiments.options import option


@dataclass(frozen=True)
class SyntheticOptions:
    """A data set of generated galaxies in the competition layout."""
    out: str = option("data/synthetic", "the folder written")
    n: int = option(2000, "labelled galaxies (training CSV + images_training_rev1/)", min=1)
    n_test: int = option(0, "unlabelled galaxies in images_test_rev1/, for predict", min=0)
    seed: int = option(0, "the same seed draws the same galaxies", min=0)


def run(options: SyntheticOptions) -> None:
    from gz_experiments.synthetic import generate
    path = generate(options.out, options.n, seed=options.seed, n_test=options.n_test)
    print(f"wrote {options.n} synthetic galaxies to {path}")
