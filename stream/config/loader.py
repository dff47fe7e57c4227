"""Turn a YAML mapping into typed config dataclasses, with one-line errors that name the key.

Checks unknown keys and value types here; checks of values (ranges, consistency) live in each
dataclass's ``__post_init__``, which raises ``ValueError`` starting with the field name.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import yaml

from stream.config.errors import UserError

T = TypeVar("T")
ENV_PREFIX = "PEPNET_"


class ConfigError(UserError):
    """The configuration is invalid; the message names the key, the value and what is expected."""


def build_dataclass(cls: type[T], data: Any, path: str = "") -> T:
    """Build ``cls`` from ``data`` (a mapping), recursively, checking keys and types."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or 'config'} = {data!r}: expected a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = _join(path, str(unknown[0]))
        raise ConfigError(f"{key}: unknown key; known keys here are {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints[name], value, _join(path, name))
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{_join(path, missing[0])}: required key is missing")
    try:
        return cls(**kwargs)
    except ValueError as e:
        raise ConfigError(keyed_message(str(e), path, fields)) from None


def keyed_message(message: str, path: str, fields: Mapping[str, Any]) -> str:
    """A dataclass's ``ValueError`` message as one line naming the full key: ``"partitions must be
    > 0"`` from ``kafka.topics.impressions`` -> ``"kafka.topics.impressions.partitions: must be > 0"``;
    a first word ``task_rates.like`` names a key below the field ``task_rates``."""
    first, _, rest = message.partition(" ")
    if first.split(".", 1)[0] in fields and rest:
        return f"{_join(path, first)}: {rest}"
    return f"{path or 'config'}: {message}"


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path} = {value!r}: expected {_name(tp)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path} = {value!r}: expected one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{path} = {value!r}: expected a list")
        item = args[0] if args else Any
        return [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} = {value!r}: expected a mapping")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _convert(vt, v, _join(path, str(k))) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} = {value!r}: expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} = {value!r}: expected an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path} = {value!r}: expected a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} = {value!r}: expected a string")
        return value
    raise ConfigError(f"{path}: unsupported type {_name(tp)} in the config schema")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a YAML file into a mapping, with a one-line error when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found; --config takes a YAML file of the keys to change") from None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigError(f"config file {path}: cannot read it ({reason}); --config takes a YAML file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {path}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    return data


def merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def apply_env_overrides(cls: type, data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Set ``a.b.c`` from ``PEPNET_A_B_C`` for every leaf key of ``cls`` (value parsed as YAML).

    A ``PEPNET_<SECTION>_...`` variable that names no leaf key is an error, not silently ignored:
    a typo would otherwise leave the default in force.
    """
    leaves = _leaf_env_names(cls, ())
    _check_env_names(cls, {env_name for env_name, _ in leaves}, environ)
    out = data
    for env_name, path in leaves:
        if env_name not in environ:
            continue
        raw = environ[env_name]
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        # Strings stay strings: "9092" for a str field should not become an int.
        if _leaf_type(cls, path) is str:
            value = raw
        out = merge(out, _nest(path, value))
    return out


def _check_env_names(cls: type, known: set[str], environ: Mapping[str, str]) -> None:
    hints = typing.get_type_hints(cls)
    sections = [
        ENV_PREFIX + f.name.upper() + "_" for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])
    ]
    for env_name in sorted(environ):
        if env_name not in known and env_name.startswith(tuple(sections)):
            raise ConfigError(
                f"{env_name}: names no config key; PEPNET_<SECTION>_<KEY> sets a leaf key, e.g. PEPNET_KAFKA_BOOTSTRAP"
            )


def _leaf_env_names(cls: type, prefix: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    names = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        path = prefix + (f.name,)
        if dataclasses.is_dataclass(tp):
            names += _leaf_env_names(tp, path)
        else:
            names.append((ENV_PREFIX + "_".join(path).upper(), path))
    return names


def _leaf_type(cls: type, path: tuple[str, ...]) -> Any:
    tp: Any = cls
    for name in path:
        tp = typing.get_type_hints(tp)[name]
    return tp


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out: Any = value
    for name in reversed(path):
        out = {name: out}
    return out
