"""Standalone mode: settings from the environment, the local controller, its state file, serve."""
