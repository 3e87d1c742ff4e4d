"""Runs pytest under `bazel test`: test files come as arguments, JUnit XML goes where Bazel wants it."""

from __future__ import annotations

import os
import sys

import pytest


def main() -> int:
    args = ["-p", "no:cacheprovider", "--import-mode=importlib", "-q", "-rfEs"]
    xml = os.environ.get("XML_OUTPUT_FILE")
    if xml:
        args.append(f"--junitxml={xml}")
    if os.environ.get("TESTBRIDGE_TEST_ONLY"):  # bazel test --test_filter=...
        args += ["-k", os.environ["TESTBRIDGE_TEST_ONLY"]]
    return pytest.main(args + sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
