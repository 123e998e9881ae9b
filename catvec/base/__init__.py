"""The shared base: errors, keys, table reading, config, vectors, versioned stores, step markers."""
