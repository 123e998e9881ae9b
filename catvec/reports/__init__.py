"""Reports: one renderer of manifests and metrics into markdown and terminal lines, and the pictures."""
