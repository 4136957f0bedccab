"""Training loops and the ``dilemmas`` command line."""
