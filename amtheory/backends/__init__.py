"""Associative-memory backends, one per file, all on the interface of ``amtheory.core.interface.AssociativeMemory``."""
