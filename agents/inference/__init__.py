"""The inference layer: providers and the router in front of them.

Shared by the generate stage and the validate stage's judge, so it belongs to neither.
"""
