"""Reusable test machinery: the backend registry, the conformance suite and hypothesis strategies."""
