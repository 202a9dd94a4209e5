"""Profiles: YAML files under ``configs/pipeline/`` validated into typed dataclasses.

A profile is one YAML mapping with one section per package (``warc``, ``extract``, ``filters``,
``dedup``, ``images``, ``output``, ...). Each package declares the dataclass of its own section and
asks for it with :meth:`Profile.section`; unknown keys and wrong types are errors, so a typo in a
threshold never silently falls back to a default.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

PROFILE_DIR = Path(__file__).resolve().parent.parent / "configs" / "pipeline"


class ConfigError(ValueError):
    """A profile or one of its sections is invalid."""


def profile_path(name_or_path: str | Path) -> Path:
    """Resolve a profile name (``default``, ``obelics-2023``) or a YAML path to a file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    candidate = PROFILE_DIR / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate
    known = sorted(x.stem for x in PROFILE_DIR.glob("*.yaml"))
    raise ConfigError(f"unknown profile {name_or_path!r}: not a YAML file and not one of {known}")


def _parse_scalar(text: str) -> Any:
    return yaml.safe_load(text)


def apply_overrides(data: dict, overrides: list[str] | None) -> dict:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML) to a nested dict, returning a copy."""
    data = copy.deepcopy(data)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.path=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"override {item!r}: unknown key {parts[-1]!r}")
        node[parts[-1]] = _parse_scalar(value)
    return data


def _check_type(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            try:
                return _check_type(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {value!r} matches none of {tp}")
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
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {typing.get_args(tp)}")
        return value
    return value


def from_dict(cls: type[T], data: dict | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    data = data or {}
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown keys {unknown}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _check_type(value, hints[name], f"{where}.{name}" if where else name)
    return cls(**kwargs)


@dataclasses.dataclass
class Profile:
    """A loaded profile: its name, its raw YAML mapping, and typed access to each section."""

    name: str
    data: dict
    path: Path | None = None

    def section(self, key: str, cls: type[T]) -> T:
        """The section ``key`` validated into dataclass ``cls`` (defaults where absent)."""
        return from_dict(cls, self.data.get(key) or {}, f"{self.name}:{key}")

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node


def load_profile(name_or_path: str | Path | Profile = "default", overrides: list[str] | None = None) -> Profile:
    """Load a profile by name or path, applying ``key.path=value`` overrides."""
    if isinstance(name_or_path, Profile):
        if not overrides:
            return name_or_path
        return Profile(name_or_path.name, apply_overrides(name_or_path.data, overrides), name_or_path.path)
    path = profile_path(name_or_path)
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a profile must be a YAML mapping")
    name = data.pop("name", path.stem)
    return Profile(name=name, data=apply_overrides(data, overrides), path=path)
