"""The report's options: which approaches (and seeds), and the overrides for all of them
(`field=value`) or for one (`<approach>.field=value`)."""
from __future__ import annotations

from dataclasses import dataclass

from gz_experiments.config import ConfigError
from gz_experiments.commands.seeds import parse_seeds

BASELINE = "baseline"
DEFAULT_APPROACHES = (BASELINE, "cnn_full", "cnn_cropped", "cnn_slim_head", "resnet")
OPTION_NAMES = ("approaches", "seeds", "from")


@dataclass(frozen=True)
class ReportOptions:
    approaches: tuple[str, ...] = DEFAULT_APPROACHES
    seeds: tuple[int, ...] = ()      # (): each approach's own seed
    from_run: str | None = None      # rebuild the artifacts of this report's runs, train nothing


def parse_options(tokens: dict[str, str]) -> tuple[ReportOptions, dict[str, str]]:
    """Split `key=value` tokens into report options and overrides: `field=value` for every approach,
    `<approach>.field=value` for one (e.g. resnet.weights=none)."""
    import experiments
    fixed = {k: v for k, v in tokens.items() if k not in OPTION_NAMES}
    approaches = tuple(a.strip() for a in tokens.get("approaches", ",".join(DEFAULT_APPROACHES)).split(",") if a.strip())
    known = (BASELINE, *experiments.APPROACHES)
    unknown = [a for a in approaches if a not in known]
    if not approaches or unknown or len(set(approaches)) != len(approaches):
        raise ConfigError(f"parameter 'approaches' takes distinct names from {', '.join(known)}, comma-separated; "
                          f"got {tokens.get('approaches')!r}")
    for key in fixed:
        scope = key.split(".", 1)[0] if "." in key else None
        if scope is not None and scope not in approaches:
            raise ConfigError(f"parameter {key!r} is for approach {scope!r}, which this report doesn't run "
                              f"(approaches: {', '.join(approaches)})")
    if "seeds" in tokens and "seed" in fixed:
        raise ConfigError("give either seed=N or seeds=N,M,… to a report, not both")
    seeds = parse_seeds(tokens["seeds"]) if "seeds" in tokens else ()
    from_run = tokens.get("from", "").strip() or None
    if from_run and set(tokens) - {"from"}:
        raise ConfigError(f"report from=RUN_ID rebuilds that report as it was; drop {sorted(set(tokens) - {'from'})}")
    return ReportOptions(approaches, seeds, from_run), fixed


def overrides_for(approach: str, fixed: dict[str, str]) -> dict[str, str]:
    shared = {k: v for k, v in fixed.items() if "." not in k}
    own = {k.split(".", 1)[1]: v for k, v in fixed.items() if k.startswith(f"{approach}.")}
    return {**shared, **own}
