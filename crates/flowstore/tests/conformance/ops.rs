//! Conformance tests for the `ops` area.
