"""Every command's options: a frozen dataclass, read by one parser in the training config's words.

A field's type says how its `key=value` is read, through `config.parse_value`: booleans take
true/false, yes/no, on/off, 1/0; `none` (or the field's own word, `all` for n_train) unsets an
optional field; a whole number may come as MLflow's "3.0". `typing.Literal[...]` lists a field's
choices, `tuple[...]` takes comma-separated items, and `option(default, help, min=…)` gives its
default (none: required), the line `--help` shows and its lower bound. An optional dataclass field
groups parameters (giving one of them sets it); an `others(...)` field takes every other
`key=value` (training parameters, for a sweep or a report). Rules between fields are the class's own
`check()`, run once the fields are read.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, dataclass

from gz_experiments.config import UNSET_WORDS, parse_value, unset_word
from gz_experiments.errors import ConfigError

SCRIPT = "gz-experiments"


def option(default=MISSING, help: str = "", *, min=None, above=None, name: str | None = None):
    """A field of a command's options; without a default it must be given. `name`: the parameter's
    name where the attribute can't carry it (`from`)."""
    return dataclasses.field(default=default, metadata={"help": help, "min": min, "above": above, "name": name})


def others(help: str):
    """The field that takes every `key=value` that is not an option, as the raw strings."""
    return dataclasses.field(default_factory=dict, metadata={"help": help, "others": True})


@dataclass(frozen=True)
class Parameter:
    name: str                 # as given: name=value
    path: tuple[str, ...]     # attributes: (field,), or (group, field) inside a group
    hint: object
    default: object           # MISSING: required
    meta: Mapping


def parameters(cls) -> dict[str, Parameter]:
    """Every parameter of an options class by its name, a group's own parameters included."""
    found = {}
    for field, hint in _fields(cls):
        if field.metadata.get("others"):
            continue
        group = _group(hint)
        inner = _fields(group) if group else [(field, hint)]
        for sub, sub_hint in inner:
            name = sub.metadata.get("name") or sub.name
            path = (field.name, sub.name) if group else (field.name,)
            found[name] = Parameter(name, path, sub_hint, sub.default, sub.metadata)
    return found


def _group(hint):
    """The dataclass a field's hint holds (`SplitChoice | None`): its fields are parameters of their own."""
    return next((c for c in (hint, *typing.get_args(hint)) if dataclasses.is_dataclass(c)), None)


def _fields(cls) -> list:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def _others_field(cls) -> str | None:
    return next((f.name for f in dataclasses.fields(cls) if f.metadata.get("others")), None)


def parse(cls, given: Mapping[str, str], command: str):
    """`given` (name -> the string typed or passed by MLflow) -> an instance of `cls`, every value typed
    and checked; unknown or missing names are one error showing the command's usage."""
    known = parameters(cls)
    rest = _others_field(cls)
    unknown = [] if rest else sorted(set(given) - set(known))
    missing = [p.name for p in known.values() if p.default is MISSING and p.name not in given]
    if unknown or missing:
        wrong = [f"unknown parameter{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))}"] if unknown else []
        wrong += [f"missing {', '.join(map(repr, missing))} (required)"] if missing else []
        raise ConfigError(f"{command}: {'; '.join(wrong)}\n{usage(cls, command)}")
    values, groups = {}, {}
    for name, raw in given.items():
        if name in known:
            parameter = known[name]
            target = groups.setdefault(parameter.path[0], {}) if len(parameter.path) > 1 else values
            target[parameter.path[-1]] = read(parameter, raw)
    hints = {field.name: hint for field, hint in _fields(cls)}
    for field, chosen in groups.items():   # a group's other parameters keep its defaults
        values[field] = _group(hints[field])(**chosen)
    if rest:
        values[rest] = {k: v for k, v in given.items() if k not in known}
    options = cls(**values)
    if hasattr(options, "check"):
        options.check()
    return options


def read(parameter: Parameter, raw):
    """One parameter's value from its string: typed by its hint, its choices and its bound checked."""
    name, meta = parameter.name, parameter.meta
    hint, optional = _without_none(parameter.hint)
    text = raw.strip() if isinstance(raw, str) else raw
    if optional and (text == "" or str(text).lower() == unset_word(name)):
        return None
    if typing.get_origin(hint) is tuple:
        words = [] if str(text).lower() in ("", "none") else [w.strip() for w in str(text).split(",") if w.strip()]
        value = tuple(_scalar(name, word, typing.get_args(hint)[0]) for word in words)
    else:
        value = _scalar(name, text, hint)
    for item in value if isinstance(value, tuple) else (value,):
        unset = unset_word(name) if optional else None
        if meta.get("min") is not None and item < meta["min"]:
            raise ConfigError.too_small(name, meta["min"], item, unset=unset)
        if meta.get("above") is not None and not item > meta["above"]:
            raise ConfigError.too_small(name, meta["above"], item, strictly=True, unset=unset)
    return value


def _without_none(hint) -> tuple[object, bool]:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return hint, False


def _scalar(name: str, text, hint):
    if typing.get_origin(hint) is typing.Literal:
        choices = typing.get_args(hint)
        found = {str(c).lower(): c for c in choices}.get(str(text).lower())
        if found is None:
            raise ConfigError.not_a_choice(name, choices, text)
        return found
    return parse_value(name, text, hint)


# ---- usage ---------------------------------------------------------------------------------------

def usage(cls, command: str) -> str:
    """`gz-experiments COMMAND`'s parameters: each with its default (or required), choices, bound, help."""
    lines = [f"usage: {SCRIPT} {command} [name=value …]   (or --name value)"]
    for left, notes in _described(cls):
        lines.append(f"  {left:<30} {notes}" if len(left) < 31 else f"  {left}\n  {'':<30} {notes}")
    return "\n".join(lines)


def _described(cls) -> Iterator[tuple[str, str]]:
    known = parameters(cls)
    groups_shown = set()
    for field, hint in _fields(cls):
        if field.metadata.get("others"):
            yield "name=value …", field.metadata["help"]
            continue
        inside = [p for p in known.values() if p.path[0] == field.name and len(p.path) > 1]
        if inside and field.name not in groups_shown:
            groups_shown.add(field.name)
            yield f"{', '.join(p.name for p in inside)}:", field.metadata.get("help", "")
            yield from ((f"  {p.name}={_shown(p.name, p.default)}", _notes(p)) for p in inside)
        elif not inside:
            p = next(p for p in known.values() if p.path == (field.name,))
            yield f"{p.name}={_shown(p.name, p.default)}", _notes(p)


def _notes(parameter: Parameter) -> str:
    hint, optional = _without_none(parameter.hint)
    item = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else hint
    notes = ["required"] if parameter.default is MISSING else []
    if typing.get_origin(item) is typing.Literal:
        notes.append(" | ".join(map(str, typing.get_args(item))))
    if item is bool:
        notes.append("true | false")
    if parameter.meta.get("min") is not None:
        notes.append(f"≥ {parameter.meta['min']}")
    if parameter.meta.get("above") is not None:
        notes.append(f"> {parameter.meta['above']}")
    if optional and parameter.default is not None:
        notes.append("%s: %s" % UNSET_WORDS.get(parameter.name, ("none", "unset")))
    if parameter.meta.get("help"):
        notes.append(parameter.meta["help"])
    return "; ".join(notes)


def _shown(name: str, value) -> str:
    if value is MISSING:
        return "…"
    if value is None:
        return unset_word(name)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    return str(value)


# ---- the command line's tokens -------------------------------------------------------------------

def parse_overrides(tokens: list[str]) -> dict[str, str]:
    """`key=value`, `--key value` and `--key=value` tokens -> {key: value}; `-` in keys reads as `_`."""
    return {key.replace("-", "_"): value for key, value in _pairs(tokens)}


def _pairs(tokens: list[str]):
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("--"):
            key, has_value, value = token[2:].partition("=")
            if not has_value:
                if i + 1 >= len(tokens):
                    raise ConfigError(f"parameter --{key} needs a value")
                value, i = tokens[i + 1], i + 1
        elif "=" in token:
            key, _, value = token.partition("=")
        else:
            raise ConfigError(f"expected key=value or --key value, got {token!r}")
        yield key, value
        i += 1
