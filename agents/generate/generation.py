"""Turn one request into one raw asset; every failure becomes data on the raw asset."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from agents.generate.providers._base import Provider, ProviderError
from streams.blobs import LocalBlobStore
from streams.records import GenerationError, GenerationRequest, RawAsset

log = logging.getLogger(__name__)


class ProviderRouter:
    """Picks the provider a request names, or the default one."""

    def __init__(self, providers: Mapping[str, Provider], default: str) -> None:
        if default not in providers:
            raise ValueError(f"default provider {default!r} is not configured")
        self._providers = dict(providers)
        self.default = default

    def resolve(self, request: GenerationRequest) -> Provider:
        name = request.model.provider or self.default
        try:
            return self._providers[name]
        except KeyError:
            known = ", ".join(sorted(self._providers))
            raise ProviderError(
                "provider.unknown", f"unknown provider {name!r} (configured: {known})"
            ) from None


async def generate_asset(
    request: GenerationRequest,
    router: ProviderRouter,
    blobs: LocalBlobStore,
    clock: Callable[[], float] = time.perf_counter,
) -> RawAsset:
    """Never raises for a bad request or a failing provider: the error travels as a RawAsset."""
    start = clock()
    provider_name = request.model.provider or router.default
    try:
        provider = router.resolve(request)
        provider_name = provider.name
        generated = await provider.generate(request)
        blob = blobs.put(generated.data, generated.media_type)
    except ProviderError as exc:
        return _failed(request, provider_name, exc.code, exc.message, exc.retryable, start, clock)
    except OSError as exc:
        log.exception("writing blob for %s failed", request.request_id)
        return _failed(request, provider_name, "blob.write_failed", str(exc), True, start, clock)
    except Exception as exc:  # a provider bug must not stop the line
        log.exception("provider %s crashed on %s", provider_name, request.request_id)
        message = f"{type(exc).__name__}: {exc}"
        return _failed(request, provider_name, "provider.crashed", message, True, start, clock)
    return RawAsset(
        request=request,
        blob=blob,
        provider=generated.provider,
        model_version=generated.model_version,
        latency_ms=(clock() - start) * 1000.0,
        cost=generated.cost,
    )


def _failed(
    request: GenerationRequest,
    provider: str,
    code: str,
    message: str,
    retryable: bool,
    start: float,
    clock: Callable[[], float],
) -> RawAsset:
    return RawAsset(
        request=request,
        error=GenerationError(code=code, message=message, retryable=retryable),
        provider=provider,
        model_version=request.model.version or "",
        latency_ms=(clock() - start) * 1000.0,
    )
