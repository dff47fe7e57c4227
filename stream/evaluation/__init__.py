"""Offline progressive comparison of architectures (``pepnet evaluate``)."""
