"""Media container formats, shared by validate (structure checks) and deliver (stamping)."""
