"""Human review: assets that automation could not settle wait here for a person's decision."""
