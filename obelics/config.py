"""Profiles: YAML files under ``configs/pipeline/`` validated into typed dataclasses.

A profile is one YAML mapping with one section per package (``warc``, ``extract``, ``text_filters``,
``dedup``, ``images``, ``output``, ``run``, ...). Each package declares the dataclass of its own section,
and the dataclass's field defaults are *the* defaults: ``configs/pipeline/default.yaml`` states none of
its own, so a threshold is changed in exactly one place. A profile says only what differs from the
profile it ``extends`` (mappings merge key by key, lists and scalars replace)::

    extends: default            # a profile name or a YAML path (relative to this file)
    nsfw: {threshold: 0.9}

``key.path=value`` overrides (``--set`` on the command line, ``set:`` in a run YAML, ``key=value`` for
``python -m train``) all go through :func:`apply_overrides`; values are read as YAML.

Validation is typed (:func:`from_dict`): unknown keys and wrong types are errors, so a typo never falls
back to a default silently. YAML 1.1 spellings are read by type, not by string hacks: ``off``/``on``
(which YAML reads as booleans) are accepted where a choice offers them, and ``3e-4`` (which YAML reads
as a string) where a number is expected. ``pipeline.profile`` validates every section of a pipeline
profile at load; :meth:`Profile.section` validates one (library use such as ``obelics.extract_html``).
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from obelics.paths import configs_dir

T = TypeVar("T")

PROFILE_DIR = configs_dir() / "pipeline"  # the checkout's configs/, or the copy shipped in the wheel
EXTENDS = "extends"

# YAML 1.1 (PyYAML) reads "1e-4" (no dot) as a string; "1.0e-4" is a float.
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class ConfigError(ValueError):
    """A profile or one of its sections is invalid."""


def profile_path(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """Resolve a profile name (``default``, ``obelics-2023``) or a YAML path to a file.

    A relative path is looked up beside ``relative_to`` (the extending profile's folder) first."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        for cand in ([relative_to / p] if relative_to is not None and not p.is_absolute() else []) + [p]:
            if cand.exists():
                return cand
    candidate = PROFILE_DIR / f"{name_or_path}.yaml"
    if "/" not in str(name_or_path) and candidate.exists():
        return candidate
    known = sorted(x.stem for x in PROFILE_DIR.glob("*.yaml"))
    raise ConfigError(f"unknown profile {str(name_or_path)!r}: not a YAML file and not one of {known}")


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` merged onto a copy of ``base``: mappings merge key by key, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"a.b.c=value"`` -> (``["a", "b", "c"]``, value read as YAML)."""
    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key.path=value")
    key, text = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {item!r}: empty key in {key.strip()!r}")
    try:
        return parts, yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({str(e).splitlines()[0]})") from None


def apply_overrides(data: dict, overrides: list[str] | None) -> dict:
    """Apply ``a.b.c=value`` overrides to a copy of the nested mapping ``data``.

    Missing sections are created (the schema, not this function, decides which keys exist: a typed
    validation after it refuses unknown ones); a path through a value that is not a mapping is an error.
    This is the one override parser of the project (pipeline ``--set``, run YAML ``set:``, the trainer)."""
    data = copy.deepcopy(data)
    if isinstance(overrides, str):
        raise ConfigError(f"overrides must be a list of key.path=value, got the string {overrides!r}")
    for item in overrides or []:
        parts, value = parse_override(item)
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return data


def _literal(value: Any, choices: tuple, where: str) -> Any:
    if value in choices and type(value) is type(next(c for c in choices if c == value)):
        return value
    # YAML 1.1 reads unquoted off/on (and no/yes) as booleans: where the choice is spelled that way, take it.
    if isinstance(value, bool):
        for spelling in (("off", "no") if value is False else ("on", "yes")):
            if spelling in choices:
                return spelling
    raise ConfigError(f"{where}: {value!r} is not one of {list(choices)}")


def _check_type(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(value, arg, where)
            except ConfigError as e:
                errors.append(str(e).split(": ", 1)[-1])
        if len(errors) == 1:
            raise ConfigError(f"{where}: {errors[0]}{' (or null)' if type(None) in args else ''}")
        raise ConfigError(f"{where}: {value!r} matches none of {' | '.join(_type_name(a) for a in args)}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (arg,) = typing.get_args(tp)[:1] or (Any,)
        out = [_check_type(v, arg, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = typing.get_args(tp) or (Any, Any)
        return {_check_type(k, kt, where): _check_type(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            return float(value)  # "3e-4": a number YAML 1.1 did not recognise
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    if origin is typing.Literal:
        return _literal(value, typing.get_args(tp), where)
    return value


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def from_dict(cls: type[T], data: dict | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types.

    Absent keys take the dataclass defaults; a mapping given for a mapping-valued field with a default
    (``perplexity.max_perplexity``) is merged onto that default, as profiles merge onto what they extend."""
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown keys {unknown} (known: {sorted(fields)})")
    kwargs = {}
    for name, value in data.items():
        tp, f = hints[name], fields[name]
        if (isinstance(value, dict) and typing.get_origin(tp) is dict
                and f.default_factory is not dataclasses.MISSING):
            value = deep_merge(f.default_factory(), value)
        kwargs[name] = _check_type(value, tp, f"{where}.{name}" if where else name)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:  # a dataclass's own __post_init__ check
        raise ConfigError(f"{where or cls.__name__}: {e}") from None


@dataclasses.dataclass
class Profile:
    """A loaded profile: its name, its mapping (``extends`` resolved, overrides applied), typed sections."""

    name: str
    data: dict
    path: Path | None = None

    def section(self, key: str, cls: type[T]) -> T:
        """The section ``key`` validated into dataclass ``cls`` (defaults where absent)."""
        return from_dict(cls, self.data.get(key) or {}, f"{self.name}:{key}")

    def get(self, dotted: str, default: Any = None) -> Any:
        """The raw value at ``a.b.c`` as the profile states it, or ``default`` when it does not."""
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node


def read_profile_data(path: Path, _seen: tuple[Path, ...] = ()) -> dict:
    """The mapping of the profile file ``path`` with its ``extends`` chain merged in (``name`` kept)."""
    path = path.resolve()
    if path in _seen:
        raise ConfigError(f"{path}: profiles extend each other in a cycle "
                          f"({' -> '.join(p.stem for p in (*_seen, path))})")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a profile must be a YAML mapping")
    name = data.pop("name", path.stem)
    base_name = data.pop(EXTENDS, None)
    if base_name is not None:
        if not isinstance(base_name, str):
            raise ConfigError(f"{path}: `extends` must be a profile name or a YAML path, got {base_name!r}")
        base = read_profile_data(profile_path(base_name, path.parent), (*_seen, path))
        base.pop("name", None)
        data = deep_merge(base, data)
    return {"name": name, **data}


def load_profile(name_or_path: str | Path | Profile = "default", overrides: list[str] | None = None) -> Profile:
    """Load a profile by name or path (its ``extends`` chain merged), applying ``key.path=value`` overrides."""
    if isinstance(name_or_path, Profile):
        if not overrides:
            return name_or_path
        return Profile(name_or_path.name, apply_overrides(name_or_path.data, overrides), name_or_path.path)
    path = profile_path(name_or_path)
    data = read_profile_data(path)
    name = data.pop("name")
    return Profile(name=str(name), data=apply_overrides(data, overrides), path=path)
