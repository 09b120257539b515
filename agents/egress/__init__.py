"""Outbound HTTP to addresses that data supplied (webhook URLs, provider result URLs).

Shared by notify (webhooks) and the inference layer (image result URLs): ``ssrf`` decides
whether a URL may be dialled and to which addresses, ``pinning`` makes httpx dial only those.
"""
