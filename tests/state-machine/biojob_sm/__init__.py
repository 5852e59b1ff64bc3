"""The stack's state machine executed on one machine: docs/state-machine-harness.md."""
