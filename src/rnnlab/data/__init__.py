"""Readers, vocabularies, batching and one DataModule per task family."""
