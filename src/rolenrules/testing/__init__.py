"""Test support shipped with the package: a local OpenAI-compatible server and tiny models."""
