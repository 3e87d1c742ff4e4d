"""Build context: content hash (changes iff an input changes), deterministic tar, files, dok sources."""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dok.builder.context import BuildContext, ContextFile, content_hash, dok_package_files, package_dir, user_files
from dok.builder.exceptions import InvalidInputError, MissingFileError

paths = st.from_regex(r"[a-z]{1,6}(/[a-z]{1,6}){0,2}", fullmatch=True)
files_strategy = st.dictionaries(paths, st.binary(max_size=64), max_size=5)
inputs = st.fixed_dictionaries({
    "dockerfile": st.text(max_size=40),
    "files": files_strategy,
    "extra": st.dictionaries(st.sampled_from(["base", "env", "x"]), st.text(max_size=8), max_size=3),
})


def hash_of(inp: dict) -> str:
    return content_hash(dockerfile=inp["dockerfile"],
                        files=[ContextFile(path=p, data=d) for p, d in inp["files"].items()], extra=inp["extra"])


@given(inputs, inputs)
def test_hash_changes_iff_an_input_changes(a, b):
    assert (hash_of(a) == hash_of(b)) == (a == b)


@given(inputs)
def test_hash_ignores_file_order(inp):
    forward = [ContextFile(path=p, data=d) for p, d in inp["files"].items()]
    assert content_hash(dockerfile=inp["dockerfile"], files=forward, extra=inp["extra"]) == \
        content_hash(dockerfile=inp["dockerfile"], files=list(reversed(forward)), extra=inp["extra"])


def test_hash_covers_mode_and_is_a_valid_tag():
    a = content_hash(dockerfile="x", files=[ContextFile(path="f", data=b"1", mode=0o644)])
    b = content_hash(dockerfile="x", files=[ContextFile(path="f", data=b"1", mode=0o755)])
    assert a != b and len(a) == 24 and a.isalnum()


def test_tar_is_deterministic_and_complete():
    ctx = BuildContext.of(dockerfile="FROM x\n", files=[ContextFile(path="b/c.txt", data=b"hi"),
                                                      ContextFile(path="a.txt", data=b"a", mode=0o755)])
    assert ctx.tar() == ctx.tar()
    with tarfile.open(fileobj=io.BytesIO(ctx.tar())) as tar:
        names = tar.getnames()
        assert {"Dockerfile", "a.txt", "b", "b/c.txt"} <= set(names)
        assert tar.getmember("a.txt").mode == 0o755 and tar.getmember("b/c.txt").mtime == 0
        assert tar.extractfile("Dockerfile").read() == b"FROM x\n"


def test_user_files_staged_at_their_image_paths(tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "x.yml").write_text("x: 1\n")
    staged = {f.path: f for f in user_files({str(tmp_path / "data.csv"): "/opt/flow/data.csv",
                                            str(tmp_path / "conf"): "/etc/flow"}, "files")}
    assert staged["files/opt/flow/data.csv"].data == b"a,b\n"
    assert staged["files/etc/flow/x.yml"].data == b"x: 1\n"


def test_missing_file_is_named(tmp_path):
    with pytest.raises(MissingFileError, match="nope.txt.*does not exist"):
        user_files({str(tmp_path / "nope.txt"): "/opt/nope.txt"}, "files")


@pytest.mark.parametrize("dest", ["relative/path", "/", "/opt/../etc/x"])
def test_bad_destinations(tmp_path, dest):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InvalidInputError, match="absolute"):
        user_files({str(tmp_path / "f"): dest}, "files")


def test_dok_core_sources_found_without_pycache():
    assert package_dir("dok.core") is not None
    assert package_dir("dok.nonexistent_package") is None
    found, files = dok_package_files(["core", "nonexistent_package"], "src")
    assert found == ["core"]
    assert any(f.path == "src/dok/core/__init__.py" for f in files)
    assert not any("__pycache__" in f.path or f.path.endswith(".pyc") for f in files)
