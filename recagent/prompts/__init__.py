"""Prompt templates users edit: registry, loader and the shipped defaults (*.yaml)."""
