"""Reusable test machinery: the backend registry, the conformance suite, hypothesis strategies and profiles."""
