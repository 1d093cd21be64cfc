"""Reporters: turn findings into text, JSON and other formats."""
