"""Model routing: which provider serves a request, and how failures are survived."""
