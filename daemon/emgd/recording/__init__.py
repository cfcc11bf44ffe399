"""Guided, labelled recording sessions (``emgd record``): the protocol and the daemon side."""
