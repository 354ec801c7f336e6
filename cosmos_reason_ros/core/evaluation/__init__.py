"""Offline evaluation: replay bags and clips through the node's pipeline, score, report, compare.

questions (what to ask, what is right; read by question_file and reason1_benchmark) -> sources
(frames in bag order) -> replay (asking: the rules it shares with the live run) -> scoring ->
results -> report; compare reads two reports.
"""
