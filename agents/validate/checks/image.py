"""Image checks: does the asset decode, is it the requested format, is it the requested size.

Before any decoder sees the bytes, the container's structure is checked (:mod:`.container`):
a PNG with two IHDR chunks or data after IEND is refused as ``image.container`` and never
decoded. Animated images (APNG, animated WebP) are refused as ``image.animated`` unless the
brand allows them: every other pixel check reads the first frame only.

Decoding is both the expensive and the dangerous step (decompression bombs), so the three checks
share one :class:`ImageProber`. It reads the header first, refuses anything above its own pixel
limit before a single pixel is decoded, decodes at most once per asset, and remembers the last
probe so the sibling checks reuse it instead of decoding the same bytes again. The probe keeps the
decoded image, so pixel checks (policy, palette) reuse that one decode as well.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import ClassVar, Final, cast

from PIL import Image, ImageMath, UnidentifiedImageError

from agents.media.container import container_problem
from agents.validate.checks._base import Subject, result
from schemas.records import AssetKind, CheckResult

DEFAULT_MAX_PIXELS: Final = 40_000_000
#: Frames an allowed animation may have; each is decoded by the frame-aware checks.
DEFAULT_MAX_FRAMES: Final = 64

#: Formats the line accepts. Limiting ``Image.open`` to these also keeps untrusted bytes away
#: from Pillow plugins that shell out or parse exotic containers (EPS, PDF, ...).
DECODABLE_FORMATS: Final = ("PNG", "JPEG", "WEBP")

#: ``constraints.format`` spellings -> Pillow format names.
FORMAT_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}
)

#: Every PNG ends with this exact chunk (length 0, type IEND, fixed CRC). Pillow tolerates its
#: absence, so a PNG cut right after its pixel data would otherwise pass as whole.
_PNG_IEND: Final = b"\x00\x00\x00\x00IEND\xaeB`\x82"

_IMAGE: Final = frozenset({AssetKind.IMAGE})


@dataclass(frozen=True)
class ImageProbe:
    """What one look at the bytes found.

    ``format``, the dimensions and ``mode`` (Pillow's) come from the header, so they are known even
    when the pixel data is broken or was never decoded; ``problem`` says why the image does not
    decode, ``malformed`` why its container is refused (then it is not decoded at all), and
    ``frames`` how many frames the header announces (1 for a still image). ``image`` is the
    decoded image, set only when it decoded; it is shared by every check that uses this probe,
    so checks must treat it as read-only (no ``thumbnail``, ``paste``, ``seek``, ...).
    """

    format: str | None = None
    width: int | None = None
    height: int | None = None
    problem: str | None = None
    mode: str | None = None
    image: Image.Image | None = field(default=None, compare=False, repr=False)
    malformed: str | None = None
    frames: int = 1

    @property
    def decoded(self) -> bool:
        """True when the whole image decoded."""
        return self.problem is None

    @property
    def dimensions(self) -> str | None:
        """``"<width>x<height>"`` when the header was readable."""
        if self.width is None or self.height is None:
            return None
        return f"{self.width}x{self.height}"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def probe_image(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    formats: Sequence[str] = DECODABLE_FORMATS,
) -> ImageProbe:
    """Read the header, enforce ``max_pixels``, then decode fully; never raises for bad bytes.

    The pixel limit is ours and is checked before ``load()``; Pillow's global
    ``Image.MAX_IMAGE_PIXELS`` is neither read nor changed. Pillow still applies its own hard
    limit inside ``Image.open``; when it fires it is reported as a bomb like ours. A decoded
    image is returned open on the probe; it reads from an in-memory buffer, so no file is held.
    A malformed container (:func:`.container_problem`) never yields a decoded image: its
    header facts remain, ``malformed`` says why, and a decoding problem, if any, comes first.
    """
    malformed = container_problem(data)
    try:
        image = Image.open(io.BytesIO(data), formats=list(formats))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return ImageProbe(problem=f"refused as a decompression bomb: {exc}", malformed=malformed)
    except UnidentifiedImageError:
        return ImageProbe(problem=f"not a {'/'.join(formats)} image", malformed=malformed)
    except Exception as exc:  # any malformed header is a failed check, not a crash
        problem = f"unreadable image header: {_describe(exc)}"
        return ImageProbe(problem=problem, malformed=malformed)

    try:
        probe = _decode(image, data, max_pixels)
    except BaseException:
        image.close()
        raise
    if malformed is not None and probe.problem is None:
        problem = f"refused, see image.container: {malformed}"
        probe = replace(probe, problem=problem, image=None)
    if probe.image is None:  # only a decoded image stays open: the pixel checks read it
        image.close()
    return replace(probe, malformed=malformed)


def _decode(image: Image.Image, data: bytes, max_pixels: int) -> ImageProbe:
    width, height = image.size
    frames = max(1, int(getattr(image, "n_frames", 1)))
    header = ImageProbe(
        format=image.format, width=width, height=height, mode=image.mode, frames=frames
    )
    pixels = width * height
    if pixels > max_pixels:
        return replace(
            header,
            problem=f"{width}x{height} is {pixels} pixels, above the limit of {max_pixels} "
            "(decompression bomb guard); not decoded",
        )
    try:
        image.load()
    except Exception as exc:  # truncated or corrupt pixel data
        return replace(header, problem=f"does not decode: {_describe(exc)}")

    if header.format == "PNG" and not data.endswith(_PNG_IEND):
        return replace(
            header, problem="PNG does not end with its IEND chunk (truncated or trailing data)"
        )
    return replace(header, mode=image.mode, image=image)


def not_decoded_result(code: str, probe: ImageProbe, measured: str | None = None) -> CheckResult:
    """The failure of a pixel check on an image that did not decode; ``image.decodes`` says why.

    Repairable: an image that does not decode (or is a bomb) is a bad generation, not bad policy.
    """
    return CheckResult(
        code=code,
        passed=False,
        message=f"image did not decode, see image.decodes: {probe.problem or 'no image'}",
        measured=measured,
        repairable=True,
    )


def _is_wide_gray(image: Image.Image) -> bool:
    return image.mode == "I" or image.mode.startswith("I;16")


def to_rgba(image: Image.Image) -> Image.Image:
    """8-bit RGBA that honours every way Pillow carries transparency.

    ``convert("RGBA")`` already applies alpha bands, RGBA palettes and tRNS colour keys of 1/L/RGB
    and P images; 16-bit grey is the exception: Pillow clips it to 8 bits (1000 becomes white)
    and drops its colour key, so it is scaled and keyed here instead.
    """
    if not _is_wide_gray(image):
        return image.convert("RGBA")
    wide = image.convert("I")
    rgba = wide.point(lambda value: value / 257 + 0.5).convert("L").convert("RGBA")
    key = image.info.get("transparency")
    if isinstance(key, int):
        alpha = ImageMath.lambda_eval(lambda args: (args["v"] != key) * 255, v=wide)
        if isinstance(alpha, Image.Image):
            rgba.putalpha(alpha.convert("L"))
    return rgba


def alpha_extrema(image: Image.Image) -> tuple[int, int] | None:
    """Lowest and highest alpha of any pixel, or None when the image carries no transparency."""
    if not image.has_transparency_data:
        return None
    source = image if "A" in image.getbands() else to_rgba(image)
    # One 8-bit band, so Pillow returns a (min, max) pair of ints.
    return cast(tuple[int, int], source.getchannel("A").getextrema())


class ImageProber:
    """Probes an asset's bytes once for every image check that shares this prober.

    It remembers only the last probe, keyed by the identity of the bytes object: the suite hands
    the same :class:`Subject` to each check, so the siblings hit the cache. Holding a reference to
    those bytes keeps their identity from being reused by another object. Replacing the cached
    pair is a single assignment, so concurrent use can at worst probe twice, never mix assets.
    The cached probe holds the decoded pixels of that one asset until the next asset replaces it.
    """

    def __init__(
        self,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        formats: Sequence[str] = DECODABLE_FORMATS,
    ) -> None:
        if max_pixels <= 0:
            raise ValueError(f"max_pixels must be positive, got {max_pixels}")
        self.max_pixels = max_pixels
        self.formats = tuple(formats)
        self._last: tuple[bytes, ImageProbe] | None = None

    def __call__(self, data: bytes) -> ImageProbe:
        last = self._last
        if last is not None and last[0] is data:
            return last[1]
        probe = probe_image(data, self.max_pixels, self.formats)
        self._last = (data, probe)
        return probe


@dataclass(frozen=True)
class ImageDecodes:
    """``image.decodes``: the bytes are a supported image, within the pixel limit, and decode."""

    prober: ImageProber = field(default_factory=ImageProber)
    code: ClassVar[str] = "image.decodes"
    kinds: ClassVar[frozenset[AssetKind]] = _IMAGE

    def __call__(self, subject: Subject) -> CheckResult:
        probe = self.prober(subject.data)
        measured = " ".join(part for part in (probe.format, probe.dimensions) if part) or None
        if probe.problem is not None:
            # A new generation can produce a decodable image, a bomb included.
            return CheckResult(
                code=self.code,
                passed=False,
                message=probe.problem,
                measured=measured,
                repairable=True,
            )
        return CheckResult(
            code=self.code, passed=True, message=f"decodes as {measured}", measured=measured
        )


@dataclass(frozen=True)
class ImageFormat:
    """``image.format``: the container matches ``constraints.format`` (unset accepts any)."""

    prober: ImageProber = field(default_factory=ImageProber)
    code: ClassVar[str] = "image.format"
    kinds: ClassVar[frozenset[AssetKind]] = _IMAGE

    def __call__(self, subject: Subject) -> CheckResult:
        found = self.prober(subject.data).format
        wanted = subject.request.constraints.format
        if wanted is None:
            return self._result(True, "no format constraint; any format accepted", found)
        expected = FORMAT_NAMES.get(wanted.strip().lower())
        if expected is None:  # the request is wrong; re-generating cannot fix it
            return self._result(
                False,
                f"unsupported format constraint {wanted!r}; use one of {', '.join(FORMAT_NAMES)}",
                found,
                repairable=False,
            )
        if found is None:
            return self._result(
                False, f"expected {expected}, but no image header was readable", None
            )
        if found != expected:
            return self._result(False, f"expected {expected}, got {found}", found)
        return self._result(True, f"format is {found}", found)

    def _result(
        self, passed: bool, message: str, measured: str | None, *, repairable: bool = True
    ) -> CheckResult:
        return result(self.code, passed, message, measured, repairable=repairable)


@dataclass(frozen=True)
class ImageSize:
    """``image.size``: exact width and/or height when the request constrains them."""

    prober: ImageProber = field(default_factory=ImageProber)
    code: ClassVar[str] = "image.size"
    kinds: ClassVar[frozenset[AssetKind]] = _IMAGE

    def __call__(self, subject: Subject) -> CheckResult:
        probe = self.prober(subject.data)
        constraints = subject.request.constraints
        measured = probe.dimensions
        if constraints.width is None and constraints.height is None:
            return self._result(True, "no size constraint", measured)
        expected = f"{_or_any(constraints.width)}x{_or_any(constraints.height)}"
        if probe.width is None or probe.height is None:
            return self._result(
                False, f"expected {expected}, but no image header was readable", None
            )
        wrong = [
            f"{name} {actual} != {wanted}"
            for name, actual, wanted in (
                ("width", probe.width, constraints.width),
                ("height", probe.height, constraints.height),
            )
            if wanted is not None and actual != wanted
        ]
        if wrong:
            return self._result(
                False, f"expected {expected}, got {measured}: {'; '.join(wrong)}", measured
            )
        return self._result(True, f"size is {measured}", measured)

    def _result(self, passed: bool, message: str, measured: str | None) -> CheckResult:
        return result(self.code, passed, message, measured)  # a new generation can fix a size


@dataclass(frozen=True)
class ImageContainer:
    """``image.container``: the file's chunks or segments are laid out as its format demands."""

    prober: ImageProber = field(default_factory=ImageProber)
    code: ClassVar[str] = "image.container"
    kinds: ClassVar[frozenset[AssetKind]] = _IMAGE

    def __call__(self, subject: Subject) -> CheckResult:
        probe = self.prober(subject.data)
        if probe.malformed is not None:  # a new generation writes a new file
            return result(self.code, False, probe.malformed)
        return result(self.code, True, "container well formed (or not PNG, JPEG or WebP)")


@dataclass(frozen=True)
class ImageAnimation:
    """``image.animated``: a still image, unless ``allow``; then at most ``max_frames`` frames.

    The pixel checks (palette aside, which reads every frame) see the first frame only, so an
    APNG or animated WebP would otherwise pass on a first frame chosen to pass.
    """

    prober: ImageProber = field(default_factory=ImageProber)
    allow: bool = False
    max_frames: int = DEFAULT_MAX_FRAMES
    code: ClassVar[str] = "image.animated"
    kinds: ClassVar[frozenset[AssetKind]] = _IMAGE

    def __call__(self, subject: Subject) -> CheckResult:
        probe = self.prober(subject.data)
        frames = probe.frames
        measured = str(frames)
        if frames <= 1:
            return result(self.code, True, "a still image", measured)
        if not self.allow:
            message = f"animated {probe.format} with {frames} frames; animation is not allowed"
            return result(self.code, False, message, measured)
        if frames > self.max_frames:
            message = f"{frames} frames, above the limit of {self.max_frames}"
            return result(self.code, False, message, measured)
        return result(self.code, True, f"animation of {frames} frames allowed", measured)


def _or_any(value: int | None) -> str:
    return "*" if value is None else str(value)


def image_checks(
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[ImageDecodes, ImageFormat, ImageSize]:
    """The three image checks wired to one shared prober, so each asset is decoded once."""
    prober = ImageProber(max_pixels)
    return ImageDecodes(prober), ImageFormat(prober), ImageSize(prober)
