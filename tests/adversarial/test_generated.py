"""Generated hostile input at the public entry points: each either works or raises the
library's own error, never a traceback from below, and nothing lands outside its place."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rclaude_infra import ConfigError, TaskSpec
from rclaude_infra.tasks.downloads import place

_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
_SETTINGS = settings(max_examples=300, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SETTINGS
@given(ref=st.one_of(_TEXT, st.sampled_from(["-b", "--upload-pack=x", "a..b", "/x", "a b",
                                             "main\n", "v1.0", "feature/x"])))
def test_a_generated_ref_is_accepted_or_refused_naming_ref(ref: str) -> None:
    try:
        spec = TaskSpec(command="true", repo="https://example.com/app.git", ref=ref)
    except ConfigError as exc:
        assert exc.field == "ref"
        return
    # What is accepted cannot be read as an option or a path out of the checkout.
    assert not spec.ref.startswith(("-", "/")) and ".." not in spec.ref  # type: ignore[union-attr]
    assert "\n" not in spec.ref and " " not in spec.ref  # type: ignore[operator]


@_SETTINGS
@given(env=st.dictionaries(_TEXT, st.one_of(_TEXT, st.integers(), st.none()), max_size=5))
def test_a_generated_env_is_accepted_or_refused_naming_env(env: dict[str, object]) -> None:
    try:
        spec = TaskSpec(command="true", env=env)
    except ConfigError as exc:
        assert exc.field.startswith("env")
        return
    for key, value in spec.env.items():
        assert key.isascii() and not key.startswith("RCLAUDE_") and "\x00" not in value


@_SETTINGS
@given(name=st.one_of(_TEXT, st.lists(st.sampled_from(["..", ".", "", "a", "/", "b.txt"]),
                                      max_size=6).map("/".join)))
def test_a_generated_key_lands_inside_the_destination_or_nowhere(tmp_path: Path,
                                                                  name: str) -> None:
    dest = tmp_path / "out"
    try:
        path = place(dest, name)
    except ValueError:
        return
    assert path.resolve().is_relative_to(dest.resolve()) and path != dest


@pytest.mark.parametrize("url", ["https://example.com/a.git", "ssh://git@example.com/a",
                                 "git@example.com:me/a.git", "file:///srv/a.git"])
def test_ordinary_repo_urls_still_work(url: str) -> None:
    assert TaskSpec(command="true", repo=url).repo == url
