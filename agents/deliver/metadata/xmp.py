"""XMP packet with the provenance: the one metadata format PNG, JPEG and WebP all carry."""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

from agents.deliver.metadata.fields import DIGITAL_SOURCE_TYPE, Provenance

NS_X = "adobe:ns:meta/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_DC = "http://purl.org/dc/elements/1.1/"
NS_IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
NS_ASSETLINE = "https://assetline.dev/ns/1.0/"

# Characters XML 1.0 cannot carry at all (escaping does not help), and lone surrogates,
# which cannot be encoded as UTF-8.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """Text that any XML (and PNG text) writer can store: unstorable characters become U+FFFD.

    Values come from producers; one stray control character must not make the file invalid.
    """
    return _NOT_XML.sub("\ufffd", text)


def _text(value: str) -> str:
    return escape(xml_safe(value))


def _lang_alt(name: str, value: str) -> str:
    return (
        f'   <{name}><rdf:Alt><rdf:li xml:lang="x-default">{_text(value)}</rdf:li>'
        f"</rdf:Alt></{name}>"
    )


def xmp_packet(p: Provenance) -> bytes:
    """A complete UTF-8 XMP packet, marked writable (``end="w"``) for later editors.

    Written by hand, not with ElementTree, so the output is byte-stable (idempotent stamping)
    and no global namespace registry is touched.
    """
    lines = [
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>',
        f'<x:xmpmeta xmlns:x="{NS_X}">',
        f' <rdf:RDF xmlns:rdf="{NS_RDF}">',
        '  <rdf:Description rdf:about=""',
        f'    xmlns:dc="{NS_DC}"',
        f'    xmlns:Iptc4xmpExt="{NS_IPTC_EXT}"',
        f'    xmlns:assetline="{NS_ASSETLINE}">',
    ]
    if p.copyright is not None:
        lines.append(_lang_alt("dc:rights", p.copyright))
    if p.creator is not None:
        lines.append(
            f"   <dc:creator><rdf:Seq><rdf:li>{_text(p.creator)}</rdf:li></rdf:Seq></dc:creator>"
        )
    lines.append(_lang_alt("dc:description", p.description()))
    lines.append(
        f"   <Iptc4xmpExt:DigitalSourceType>{DIGITAL_SOURCE_TYPE}</Iptc4xmpExt:DigitalSourceType>"
    )
    for name, value in p.assetline_fields():
        lines.append(f"   <assetline:{name}>{_text(value)}</assetline:{name}>")
    if p.metadata:
        lines.append("   <assetline:metadata><rdf:Bag>")
        for key, value in p.metadata:
            lines.append(
                '    <rdf:li rdf:parseType="Resource">'
                f"<assetline:key>{_text(key)}</assetline:key>"
                f"<assetline:value>{_text(value)}</assetline:value></rdf:li>"
            )
        lines.append("   </rdf:Bag></assetline:metadata>")
    lines += [
        "  </rdf:Description>",
        " </rdf:RDF>",
        "</x:xmpmeta>",
        '<?xpacket end="w"?>',
    ]
    return "\n".join(lines).encode("utf-8")
