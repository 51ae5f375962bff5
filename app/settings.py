"""Fawn's one configuration object, read once at the edge (CLI command or API start-up).

Precedence, highest first: explicit arguments (CLI options, per-job options) > environment
variables (`FAWN_*`, nested with one `_`: `FAWN_LLM_BASE_URL` is `llm.base_url`) > the TOML
config file (`FAWN_CONFIG`, default `<data dir>/config.toml`) > the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from agents.podcast.settings import TtsSettings
from agents.tools.mcp_config import McpSettings
from app.jobs.settings import JobSettings
from serving.pressure import PressureSettings
from serving.settings import EngineSettings, GatewaySettings, LLMSettings


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/fawn`, else `~/.local/share/fawn`."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "fawn"


class Settings(BaseSettings):
    """Everything Fawn can be configured with; see the module docstring for precedence."""

    model_config = SettingsConfigDict(
        env_prefix="FAWN_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="ignore",
    )

    data_dir: Path = Field(default_factory=default_data_dir, description="Jobs, corpus, models.")
    models_dir: Path | None = Field(
        default=None, description="Converted model cache; default <data dir>/models."
    )
    llm: LLMSettings = Field(default_factory=LLMSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    pressure: PressureSettings = Field(default_factory=PressureSettings)
    tts: TtsSettings = Field(default_factory=TtsSettings)
    mcp: McpSettings = Field(
        default_factory=McpSettings, description="MCP servers as research tools, by name."
    )
    jobs: JobSettings = Field(default_factory=JobSettings)
    host: str = Field(default="127.0.0.1", description="Address the API binds to.")
    port: int = Field(default=8080, gt=0, lt=65536)
    api_key: SecretStr | None = Field(
        default=None, description="Bearer key for the API; required off loopback."
    )
    database_url: str | None = Field(
        default=None,
        description="Jobs and checkpoints in Postgres (postgresql://user:password@host:5432/db), "
        "shared by processes on several machines; unset: SQLite files in the data dir.",
    )

    @property
    def model_cache(self) -> Path:
        """Where converted models are cached."""
        return self.models_dir or self.data_dir / "models"

    @property
    def job_store_path(self) -> Path:
        """The SQLite job store every entry point shares."""
        return self.data_dir / "jobs.sqlite3"

    @property
    def checkpoints_path(self) -> Path:
        """The SQLite file of the jobs' LangGraph checkpoints."""
        return self.data_dir / "checkpoints.sqlite3"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, _config_file()))


def _config_file() -> Path:
    explicit = os.environ.get("FAWN_CONFIG")
    if explicit:
        return Path(explicit)
    data_dir = os.environ.get("FAWN_DATA_DIR")
    return (Path(data_dir) if data_dir else default_data_dir()) / "config.toml"


def load_settings(**overrides: Any) -> Settings:
    """Read the settings once; `overrides` are explicit values that win over everything."""
    return Settings(**overrides)
