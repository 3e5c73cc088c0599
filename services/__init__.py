"""Thin service entry points (config, wiring, lifecycle); the logic lives in the vitrine library."""
