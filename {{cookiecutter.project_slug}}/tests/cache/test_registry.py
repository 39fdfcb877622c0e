"""Every backend in the registry is a complete one: tested, documented in .env.example."""

from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.cache import BACKENDS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", list(BACKENDS))
def test_each_backend_has_its_test_module(name):
    module = Path(__file__).with_name(f"test_{name}.py").read_text()
    assert "def cache_factory(" in module
    assert f'backend = "{name}"' in module


@pytest.mark.parametrize("name", list(BACKENDS))
def test_each_backend_setting_is_documented(name):
    example = (ROOT / ".env.example").read_text().splitlines()
    for variable in BACKENDS[name].variables:
        assert f"{variable}=" in [line[: len(variable) + 1] for line in example]
