"""neurotile.boards."""
