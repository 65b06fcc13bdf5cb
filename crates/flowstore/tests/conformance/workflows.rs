//! Conformance tests for the `workflows` area.
