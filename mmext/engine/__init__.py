"""Hooks, loops and runner helpers."""
