"""Kubernetes labels for a run."""

from __future__ import annotations

import re
import uuid

from hypothesis import given
from hypothesis import strategies as st

from dok.core import labels

VALID = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


@given(st.text(max_size=200))
def test_sanitized_values_are_valid_label_values(value):
    clean = labels.sanitize_label_value(value)
    assert len(clean) <= 63 and VALID.match(clean), clean


@given(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?", fullmatch=True))
def test_valid_values_are_kept(value):
    assert labels.sanitize_label_value(value) == value


def test_distinct_long_values_stay_distinct():
    a, b = "x" * 100 + "a", "x" * 100 + "b"
    assert labels.sanitize_label_value(a) != labels.sanitize_label_value(b)
    assert labels.sanitize_label_value("my flow") != labels.sanitize_label_value("my-flow")


def test_run_labels_and_selector():
    ident = labels.new_identifier()
    assert str(uuid.UUID(ident)) == ident
    got = labels.run_labels(identifier=ident, flow_name="ETL: nightly!", component="worker")
    assert got[labels.IDENTIFIER_LABEL] == ident
    assert got[labels.COMPONENT_LABEL] == "worker"
    assert got[labels.MANAGED_BY_LABEL] == "dok"
    assert got[labels.FLOW_LABEL].startswith("ETL-nightly")
    assert set(got) == {"dok.dev/identifier", "dok.dev/flow", "app.kubernetes.io/component",
                        "app.kubernetes.io/managed-by"}
    assert labels.identifier_selector(ident) == f"dok.dev/identifier={ident}"
    assert labels.new_identifier() != labels.new_identifier()
