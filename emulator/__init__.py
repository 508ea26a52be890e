"""neurotile.emulator."""
