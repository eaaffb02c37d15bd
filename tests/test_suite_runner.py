"""``make test`` runs the suite as two pytest processes (scripts/suite.py): it fails when either half fails or
collects nothing, and shows both halves' output."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import suite

BROWSER_TEST = "import pytest\n\n@pytest.mark.browser\ndef test_in_a_browser():\n    assert {}\n"
OTHER_TEST = "def test_without_one():\n    assert {}\n"


def _suite(folder: Path, browser: str | None, other: str | None) -> Path:
    folder.mkdir()
    (folder / "pytest.ini").write_text("[pytest]\nmarkers =\n    browser: drives a browser\n")
    if browser is not None:
        (folder / "test_browser_half.py").write_text(BROWSER_TEST.format(browser))
    if other is not None:
        (folder / "test_other_half.py").write_text(OTHER_TEST.format(other))
    return folder


@pytest.mark.parametrize(
    ("browser", "other", "status"),
    [
        ("True", "True", 0),
        ("True", "False", 1),  # the half whose output is kept in a file
        ("False", "True", 1),
        (None, "True", 5),  # no browser test collected: never a pass
    ],
)
def test_the_suite_fails_when_either_half_fails_or_runs_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], browser: str | None, other: str | None, status: int
) -> None:
    folder = _suite(tmp_path / "suite", browser, other)
    assert suite.run_halves([str(folder)]) == status
    shown = capfd.readouterr().out
    if browser is not None:
        assert "test_browser_half.py" in shown
    if other is not None:
        assert "test_other_half.py" in shown
