"""neurotile.compiler."""
