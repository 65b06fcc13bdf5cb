//! Conformance tests for the `tasks` area.
