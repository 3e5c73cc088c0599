"""Service configuration: a YAML file plus environment variables, validated at start.

Precedence (lowest first): field defaults < the YAML file (`--config FILE` or `VITRINE_CONFIG`) <
environment variables (`<PREFIX><FIELD>`, e.g. `VITRINE_ENCODER_MAX_BATCH=512`) < command-line flags.
Errors name every bad field at once and say which environment variable sets it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from vitrine.errors import ConfigError

S = TypeVar("S", bound=BaseSettings)


class _YamlSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


def env_var(cls: type[BaseModel], field: str) -> str:
    """The environment variable that sets `field` of settings class `cls`, e.g. VITRINE_ENCODER_MAX_BATCH."""
    return f"{cls.model_config.get('env_prefix', '')}{field.upper()}"


def describe_with_variables(cls: type[BaseModel], mixin: type[BaseModel]) -> None:
    """Make the description of each of `mixin`'s fields in settings class `cls` end with the
    environment variable that sets it there: "<text> (<VARIABLE>)". For settings mixins (Kafka
    security, the index), whose variables depend on the service's prefix."""
    changed = False
    for name, template in mixin.model_fields.items():
        variable = env_var(cls, name)
        description = f"{template.description} ({variable})" if template.description else variable
        field = cls.model_fields[name]  # the subclass's own copy
        if field.description != description:
            field.description = description
            changed = True
    if changed:  # the JSON schema was built with the old descriptions
        cls.model_rebuild(force=True)


def read_config_file(path: Path | None, section: str) -> dict[str, Any]:
    """The `section` mapping of a YAML config file (a file may configure several services)."""
    if path is None:
        env = os.environ.get("VITRINE_CONFIG")
        path = Path(env) if env else None
    if path is None:
        return {}
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping")
    body = data.get(section, {})
    if not isinstance(body, dict):
        raise ConfigError(f"section {section!r} of {path} must be a mapping")
    return body


def load_settings(cls: type[S], config_file: Path | None, section: str, **overrides: Any) -> S:
    """Build a settings object from file < env < overrides (None overrides are ignored)."""
    file_values = read_config_file(config_file, section)
    unknown = sorted(set(file_values) - set(cls.model_fields))
    if unknown:
        raise ConfigError(f"unknown setting(s) in section {section!r}: {', '.join(unknown)}")

    class _WithFile(cls):  # type: ignore[valid-type,misc]
        @classmethod
        def settings_customise_sources(
            cls_inner,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, _YamlSource(settings_cls, file_values))

    _WithFile.__name__ = cls.__name__
    try:
        built = _WithFile(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc']))} (env {env_var(cls, str(err['loc'][0]))}): {err['msg']}"
            if err["loc"]
            else err["msg"]  # a check of several fields: its message names their variables
            for err in e.errors()
        )
        raise ConfigError(f"invalid {cls.__name__}: {problems}") from e
    return built  # type: ignore[no-any-return]
