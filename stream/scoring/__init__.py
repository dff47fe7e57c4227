"""Scoring with an exported model directory (``pepnet score``): loading ``LATEST`` and reading input."""
