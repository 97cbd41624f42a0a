from __future__ import annotations

import pytest

from tracker.config import Settings, SettingsError


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite:///tracker.db"
    assert settings.base_url == "http://127.0.0.1:8000"
    assert settings.short_url_prefix == "http://127.0.0.1:8000/"
    assert settings.click_writer == "process"


def test_environment_and_overrides() -> None:
    env = {"TRACKER_PORT": "9000", "TRACKER_BASE_URL": "https://go.shop.example/", "TRACKER_X": "1"}
    settings = Settings.from_env(env, workers=3, host=None)
    assert (settings.port, settings.workers, settings.host) == (9000, 3, "127.0.0.1")
    assert settings.short_url_prefix == "https://go.shop.example/"


@pytest.mark.parametrize(
    "env",
    [
        {"TRACKER_PORT": "eighty"},
        {"TRACKER_PORT": "0"},
        {"TRACKER_WORKERS": "0"},
        {"TRACKER_BASE_URL": "go.example"},
        {"TRACKER_MAX_JSON_BYTES": "10"},
        {"TRACKER_CLICK_WRITER": "fork"},
    ],
)
def test_bad_values_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env(env)
