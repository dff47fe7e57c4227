"""``pepnet demo``: the whole pipeline on this machine for a few passes."""
