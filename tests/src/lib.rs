//! End-to-end tests of the real Lifeline binaries live in `e2e/`; this library is empty on purpose.
