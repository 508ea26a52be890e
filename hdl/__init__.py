"""neurotile.hdl."""
