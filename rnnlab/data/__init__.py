"""Data: reading text, character vocabularies, the bundled corpus, and batching."""
