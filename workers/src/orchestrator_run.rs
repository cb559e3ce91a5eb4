//! Orchestrator uplets run by the worker.
