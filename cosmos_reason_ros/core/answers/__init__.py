"""Answers: modes, model families, prompts, answer formats, parsing, the final check, overlays."""
