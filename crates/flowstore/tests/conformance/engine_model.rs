//! A property test of the engine against an in-memory model of its rules.
