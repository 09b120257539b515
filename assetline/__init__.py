"""assetline: the face of the line for people and other services."""
