"""``ddx``: the command line."""
