"""Process plumbing: paths, config files, logging."""
