"""Problem records, loaders, the benchmark registry and curation filters."""
