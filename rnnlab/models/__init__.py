"""Models, one file per sequence shape."""
