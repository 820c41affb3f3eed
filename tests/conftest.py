"""Shared pytest fixtures and hooks. Module-specific fixtures live in their own test modules."""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.ci import in_ci
from vidihand_ros.testing import shared_data
from vidihand_ros.testing.shared_data import SharedDataMissing

if TYPE_CHECKING:
    from tests.remote_server import Tally


def skip_or_fail(missing: SharedDataMissing) -> None:
    """Skip a test that needs the shared photos or video when absent locally; fail it in CI."""
    if in_ci():
        pytest.fail(f"CI is set and shared test data is missing: {missing}", pytrace=False)
    pytest.skip(str(missing))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    """Fixtures that read the photos (e.g. module-scoped frame lists) go through the same policy."""
    try:
        return (yield)
    except SharedDataMissing as missing:
        skip_or_fail(missing)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """A test body that reads the photos through `vidihand_ros.testing.shared_data`."""
    try:
        return (yield)
    except SharedDataMissing as missing:
        skip_or_fail(missing)


@pytest.fixture
def hand_photo_paths() -> list[Path]:
    """Real photographs of hands (HaMeR example images, MIT; kept outside the repository)."""
    return shared_data.hand_photo_paths()


@pytest.fixture(scope="module")
def jpegs() -> list[bytes]:
    """The real photos as 64×48 JPEGs, the frames of most bag tests (a module may define its own)."""
    import imagecodecs

    from tests.bagfactory import hand_photos

    return [bytes(imagecodecs.jpeg8_encode(p, level=90)) for p in hand_photos(64, 48)]


@pytest.fixture
def tally() -> Iterator[tuple[str, Tally]]:
    """A fresh `tests.remote_server.Tally` under a unique name: pass the name as the loopback
    server's `tally` option, read what its estimator saw from the Tally (the remote-client tests)."""
    from tests.remote_server import TALLIES, Tally

    name = uuid.uuid4().hex
    TALLIES[name] = Tally()
    yield name, TALLIES[name]
    del TALLIES[name]
