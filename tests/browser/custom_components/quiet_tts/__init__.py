"""A text-to-speech platform that answers every text with the same short clip (browser test only)."""
