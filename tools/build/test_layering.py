"""The package layering, checked on the sources: core imports no docker/kubernetes code and no other dok
package; builder, launcher and runner import core, and never each other's insides (the launcher's CLI may
import builder's public top-level names only). The cluster is reached through one seam: only dok.kube imports
the kubernetes client (and urllib3, tenacity); launcher and runner use dok.kube, core and builder do not.

Every cross-package use counts, not just `import` statements: a string naming a dok package
("dok.runner", `".".join(("dok", "runner"))`, `f"dok.{name}"`) is a use too (a lazy import, a module run
with `python -m`, a package looked up on sys.path). Such uses must respect the same layering, or be one of
the few listed in DYNAMIC_USES with the reason they are allowed."""

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
PACKAGES = ("core", "builder", "kube", "launcher", "runner")
# (file, the package named or "dok.{…}" for a computed name) -> why it is allowed.
DYNAMIC_USES = {
    ("core/dok/core/environment.py", "dok.{…}"): "DaskOnKubernetesEnvironment.build/setup/execute/run delegate "
                                                "lazily to dok.builder/launcher/runner (NotImplementedError when absent)",
    ("core/dok/core/names.py", "dok.runner"): "RUNNER_MODULE: the image's entrypoint, `python -m dok.runner` (a "
                                              "command, not an import)",
    ("builder/dok/builder/dockerfile.py", "dok.{…}"): "the dok packages copied into the image, by name",
    ("builder/dok/builder/context.py", "dok.{…}"): "finds those packages' sources on sys.path without importing them",
}


def _imports(path: pathlib.Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return names


def _named(node: ast.AST) -> str | None:
    """The dok package a string expression names: "dok.runner", ".".join(("dok", "runner")) -> "dok.runner";
    f"dok.{x}" -> "dok.{…}"; anything else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        parts = node.value.split(".")
        return node.value if len(parts) >= 2 and parts[0] == "dok" and parts[1] in PACKAGES else None
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value == "dok.":
            return "dok.{…}"
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join"
            and isinstance(node.func.value, ast.Constant) and node.func.value.value == "." and node.args
            and isinstance(node.args[0], (ast.Tuple, ast.List))
            and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.args[0].elts)):
        return _named(ast.Constant(".".join(e.value for e in node.args[0].elts)))  # type: ignore[union-attr]
    return None


def _string_uses(path: pathlib.Path) -> list[str]:
    return [name for node in ast.walk(ast.parse(path.read_text(), str(path))) if (name := _named(node))]


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


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_string_uses_of_packages_respect_layering(package: str) -> None:
    problems = []
    for src in _sources(package):
        rel = str(src.relative_to(ROOT))
        for name in _string_uses(src):
            if (rel, name) in DYNAMIC_USES or (rel, ".".join(name.split(".")[:2])) in DYNAMIC_USES:
                continue
            if name == "dok.{…}" or ".".join(name.split(".")[:2]) not in ALLOWED[package]:
                problems.append(f"{rel} names {name!r} (a string use of another package)")
    assert not problems, "layering violations:\n" + "\n".join(problems)


def test_string_uses_are_seen() -> None:
    """The check itself: the spellings it must catch."""
    seen = [_named(ast.parse(text, mode="eval").body) for text in
            ('"dok.runner"', '".".join(("dok", "runner"))', 'f"dok.{name}"', '"dok.dev/identifier"', '"dok"')]
    assert seen == ["dok.runner", "dok.runner", "dok.{…}", None, None]
