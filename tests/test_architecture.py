"""Dependencies point one way: web -> mypage -> deals -> signaling -> media, recordings; media never touches
the database; deals read meeting records and send SMS through signaling's gateways, but never touch media."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"core", "store", "signaling", "media", "recordings", "documents", "deals", "mypage", "web"}
FORBIDDEN = {
    "core": OURS - {"core"},
    "store": {"web", "signaling", "media", "recordings", "documents", "deals", "mypage"},
    "documents": {"web", "signaling", "media", "recordings", "deals", "mypage"},
    "media": {"web", "signaling", "recordings", "store", "documents", "deals", "mypage"},
    "recordings": {"web", "signaling", "media", "documents", "deals", "mypage"},
    "signaling": {"web", "deals", "mypage"},
    "deals": {"web", "media", "documents", "mypage"},
    # The マイページ reads customers, deals, meeting records and the library; never media or the room.
    "mypage": {"web", "media"},
    "web": set(),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package: str) -> None:
    files = list((ROOT / package).rglob("*.py"))
    assert files, f"package {package} is missing"
    assert (ROOT / package / "__init__.py").read_text().startswith('"""'), "a package opens with a docstring"
    for path in files:
        wrong = _imports(path) & FORBIDDEN[package]
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"
