"""The locator of the shared hand photos, the skip-or-fail policy for tests, and the example builder."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import skip_or_fail
from vidihand_ros.testing import shared_data
from vidihand_ros.testing.shared_data import HANDS_DIR_ENV, HandPhotosMissing


def copy_photos(folder: Path) -> Path:
    """A private copy of the shared photos (skips/fails like any photo test when they are absent)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in shared_data.hand_photo_paths():
        shutil.copy2(path, folder / path.name)
    return folder


def make_example() -> ModuleType:
    """examples/make_example.py, loaded from its file (examples/ is scripts, not a package)."""
    path = shared_data.repo_root() / "examples" / "make_example.py"
    spec = importlib.util.spec_from_file_location("make_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_default_folder_is_beside_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HANDS_DIR_ENV, raising=False)
    root = shared_data.repo_root()
    assert (root / "vidihand_ros" / "testing" / "shared_data.py").is_file()
    assert shared_data.hands_dir() == root.parent / "shared" / "data" / "hands"


def test_environment_variable_overrides_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = copy_photos(tmp_path / "hands")
    monkeypatch.setenv(HANDS_DIR_ENV, str(folder))
    assert shared_data.hands_dir() == folder
    assert [p.name for p in shared_data.hand_photo_paths()] == [
        "hamer_test1.jpg",
        "hamer_test3.jpg",
        "hamer_test5.jpg",
    ]
    assert shared_data.hand_photo_path(5) == folder / "hamer_test5.jpg"


def test_missing_photos_name_the_folder_and_where_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(HandPhotosMissing) as missing:
        shared_data.hand_photo_paths(tmp_path / "nowhere")
    message = str(missing.value)
    assert str(tmp_path / "nowhere") in message
    assert "geopavlakos/hamer" in message and HANDS_DIR_ENV in message
    assert isinstance(missing.value, FileNotFoundError)
    with pytest.raises(ValueError, match="no hand photo 2"):
        shared_data.hand_photo_path(2)


@pytest.mark.parametrize("value", ["true", "1", "yes"])
def test_missing_photos_fail_in_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="/nowhere"):
        skip_or_fail(HandPhotosMissing("hand photo /nowhere/hamer_test1.jpg not found"))


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_missing_photos_skip_outside_ci(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="/nowhere"):
        skip_or_fail(HandPhotosMissing("hand photo /nowhere/hamer_test1.jpg not found"))


def test_example_builder_reads_a_given_folder(tmp_path: Path) -> None:
    out = make_example().build(copy_photos(tmp_path / "photos"), tmp_path / "demo")
    assert (out / "metadata.yaml").is_file()
    assert "/camera/image_raw/compressed" in (out / "metadata.yaml").read_text()


def test_example_builder_without_photos_exits_2_naming_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert make_example().main([str(tmp_path / "nowhere")]) == 2
    assert str(tmp_path / "nowhere") in capsys.readouterr().err
