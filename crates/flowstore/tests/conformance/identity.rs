//! Conformance tests for the `identity` area.
