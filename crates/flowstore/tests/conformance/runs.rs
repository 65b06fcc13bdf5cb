//! Conformance tests for the `runs` area.
