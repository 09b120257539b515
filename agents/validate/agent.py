"""The validate stage: raw topic -> checks -> approved or rejected topic."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.validate.checks import default_checks
from agents.validate.validation import route, unreadable, validate
from streams.blobs import BlobError
from streams.stage import StageIO

if TYPE_CHECKING:
    from streams.app import Line

STAGE = "validate"


def install(line: Line) -> None:
    io = StageIO(line, STAGE)
    checks = default_checks(max_pixels=line.settings.max_image_pixels)
    codecs = line.codecs
    outputs = {"approved": line.topics.approved, "rejected": line.topics.rejected}

    @line.app.agent(line.topics.raw, name=STAGE)
    async def validate_stage(stream: Any) -> None:
        async for event in stream.events():
            async with io.handling(event):
                raw = await io.decode(codecs.raw, event)
                if raw is None:
                    continue
                try:
                    data = line.blobs.get(raw.blob) if raw.blob is not None else None
                except BlobError as exc:
                    validated = unreadable(raw, exc.code, str(exc))
                else:
                    validated = validate(raw, data, checks)
                output = route(validated)
                request_id = raw.request.request_id
                value = codecs.validated.encode(validated)
                await io.send(outputs[output], request_id, value, output)
