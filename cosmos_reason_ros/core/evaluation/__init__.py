"""Offline evaluation: replay bags and clips through the node's pipeline, score, report, compare.

questions (what to ask, what is right) -> sources (frames in bag order) -> replay -> scoring ->
report; compare reads two reports.
"""
