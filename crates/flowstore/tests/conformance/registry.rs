//! Conformance tests for the `registry` area.
