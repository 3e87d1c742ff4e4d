"""The package layering, checked on the sources: core imports no docker/kubernetes code and no other dok
package; builder, launcher and runner import core, and never each other's insides (the launcher's CLI may
import builder's public top-level names only). The cluster is reached through one seam: only dok.kube imports
the kubernetes client (and urllib3, tenacity); launcher and runner use dok.kube, core and builder do not."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
if not (ROOT / "core").is_dir():  # under Bazel the sources sit in the runfiles tree
    ROOT = pathlib.Path.cwd()

# package -> dok packages it may import (prefixes); "dok.builder" alone means only the top level.
ALLOWED = {
    "core": {"dok.core"},
    "builder": {"dok.core", "dok.builder"},
    "kube": {"dok.core", "dok.kube"},
    "launcher": {"dok.core", "dok.launcher", "dok.builder", "dok.kube"},
    "runner": {"dok.core", "dok.runner", "dok.kube"},
}
KUBERNETES_CLIENT = {"kubernetes", "urllib3", "tenacity"}  # dok.kube's alone
THIRD_PARTY_FORBIDDEN = {
    "core": {"docker", "requests"} | KUBERNETES_CLIENT,
    "builder": KUBERNETES_CLIENT,
    "launcher": KUBERNETES_CLIENT,
    "runner": KUBERNETES_CLIENT,
}


def _imports(path: pathlib.Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return names


def _sources(package: str) -> list[pathlib.Path]:
    return sorted((ROOT / package / "dok" / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_respect_layering(package: str) -> None:
    sources = _sources(package)
    assert sources, f"no sources found for {package} under {ROOT}"
    problems = []
    for src in sources:
        for name in _imports(src):
            top = name.split(".")[0]
            if top in THIRD_PARTY_FORBIDDEN.get(package, set()):
                problems.append(f"{src.relative_to(ROOT)} imports {name}")
            if top != "dok":
                continue
            parts = name.split(".")
            if len(parts) < 2:
                continue
            if f"dok.{parts[1]}" not in ALLOWED[package]:
                problems.append(f"{src.relative_to(ROOT)} imports {name}")
            elif package == "launcher" and parts[1] == "builder" and len(parts) > 3:
                problems.append(f"{src.relative_to(ROOT)} reaches into builder internals: {name}")
    assert not problems, "layering violations:\n" + "\n".join(problems)


def test_kube_seam_is_found_and_checked() -> None:
    """The seam package exists where the layering expects it (a typo would make the checks above vacuous)."""
    assert _sources("kube"), f"no dok.kube sources under {ROOT}"
    assert any(name.split(".")[0] == "kubernetes" for src in _sources("kube") for name in _imports(src))
