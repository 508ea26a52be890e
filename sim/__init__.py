"""neurotile.sim."""
