"""Answers that cannot make a working project: the bake stops, says why, and leaves nothing."""

import pytest
from cookiecutter.main import cookiecutter

from .conftest import TEMPLATE, answers

REFUSED = [
    ({"project_slug": "my-site"}, "project_slug='my-site' is not allowed"),
    ({"project_slug": "My_Site"}, "project_slug='My_Site' is not allowed"),
    ({"project_slug": "2fast"}, "project_slug='2fast' is not allowed"),
    ({"project_slug": "flask"}, "project_slug='flask' is the name of a module the app imports"),
    ({"package_name": "redis"}, "package_name='redis' is the name of a module the app imports"),
    ({"package_name": "test"}, "package_name='test' is the name of a module the app imports"),
    ({"package_name": "json"}, "package_name='json' is the name of a module the app imports"),
    ({"package_name": "class"}, "package_name='class' is not allowed"),
    ({"package_name": "my_cachelib"}, "package_name='my_cachelib' contains 'cachelib'"),
    ({"package_name": "my app"}, "package_name='my app' is not allowed"),
    ({"pythonanywhere_username": "bob.smith"}, "pythonanywhere_username='bob.smith' cannot be"),
    ({"pythonanywhere_username": "bob/../x"}, "pythonanywhere_username='bob/../x' cannot be"),
    ({"pythonanywhere_username": ""}, "pythonanywhere_username='' cannot be"),
    ({"pythonanywhere_username": "a" * 64}, "cannot be a PythonAnywhere username"),
]

UNKNOWN_CHOICES = [
    {"cache_backend": "mongodb"},
    {"pythonanywhere_region": "asia"},
    {"python_version": "3.9"},
]


def bake_into(output_dir, overrides) -> str:
    """Bake and return what the user was told; the bake must fail."""
    with pytest.raises(Exception) as failure:  # noqa: B017 - cookiecutter's own errors vary
        cookiecutter(
            str(TEMPLATE), no_input=True, extra_context=answers(**overrides), output_dir=str(output_dir)
        )
    return str(failure.value)


@pytest.mark.parametrize("overrides, message", REFUSED, ids=[str(r[0]) for r in REFUSED])
def test_refused_answer_stops_the_bake_and_leaves_nothing(tmp_path, capfd, overrides, message):
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    bake_into(output_dir, overrides)
    assert message in capfd.readouterr().err
    assert list(output_dir.iterdir()) == []


@pytest.mark.parametrize("overrides", UNKNOWN_CHOICES, ids=str)
def test_unknown_choice_is_refused_naming_it(tmp_path, capfd, overrides):
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    said = bake_into(output_dir, overrides) + capfd.readouterr().err
    ((key, value),) = overrides.items()
    assert value in said and key in said
    assert list(output_dir.iterdir()) == []


def test_a_slug_with_a_slash_is_refused_and_leaves_no_file(tmp_path, capfd):
    # cookiecutter creates out/site/sub before the hook runs and removes only out/site/sub on
    # failure, so an empty out/site remains: that much is outside a hook's reach.
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    bake_into(output_dir, {"project_slug": "site/sub"})
    assert "project_slug='site/sub' is not allowed" in capfd.readouterr().err
    assert [path for path in output_dir.rglob("*") if not path.is_dir()] == []
