"""The XMP packet: well-formed, escaped, and in the namespaces readers look for."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

from agents.deliver.metadata import DIGITAL_SOURCE_TYPE, Provenance, xmp_packet
from agents.deliver.metadata.xmp import NS_ASSETLINE, NS_DC, NS_IPTC_EXT, NS_RDF

RDF = f"{{{NS_RDF}}}"
DC = f"{{{NS_DC}}}"
AL = f"{{{NS_ASSETLINE}}}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def _description(packet: bytes) -> ET.Element:
    root = ET.fromstring(packet)
    found = root.find(f"{RDF}RDF/{RDF}Description")
    assert found is not None
    return found


def test_packet_is_wrapped_and_parses(provenance: Provenance) -> None:
    packet = xmp_packet(provenance)
    assert packet.startswith(b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>')
    assert packet.endswith(b'<?xpacket end="w"?>')
    assert ET.fromstring(packet).tag == "{adobe:ns:meta/}xmpmeta"


def test_hostile_values_round_trip(provenance: Provenance) -> None:
    desc = _description(xmp_packet(provenance))
    rights = desc.find(f"{DC}rights/{RDF}Alt/{RDF}li")
    assert rights is not None
    assert rights.text == provenance.copyright
    assert rights.get(XML_LANG) == "x-default"
    creator = desc.find(f"{DC}creator/{RDF}Seq/{RDF}li")
    assert creator is not None
    assert creator.text == provenance.creator
    about = desc.find(f"{DC}description/{RDF}Alt/{RDF}li")
    assert about is not None
    assert about.text == provenance.description()


def test_digital_source_type(provenance: Provenance) -> None:
    desc = _description(xmp_packet(provenance))
    assert desc.findtext(f"{{{NS_IPTC_EXT}}}DigitalSourceType") == DIGITAL_SOURCE_TYPE


def test_assetline_fields_and_metadata(provenance: Provenance) -> None:
    desc = _description(xmp_packet(provenance))
    for name, value in provenance.assetline_fields():
        assert desc.findtext(f"{AL}{name}") == value
    items = desc.findall(f"{AL}metadata/{RDF}Bag/{RDF}li")
    got = [(i.findtext(f"{AL}key"), i.findtext(f"{AL}value")) for i in items]
    assert got == list(provenance.metadata)


def test_unstorable_characters_are_replaced(provenance: Provenance) -> None:
    p = dataclasses.replace(provenance, creator="a\x00b\x1bc\ud800d", copyright=None)
    desc = _description(xmp_packet(p))
    assert desc.findtext(f"{DC}creator/{RDF}Seq/{RDF}li") == "a\ufffdb\ufffdc\ufffdd"
    assert desc.find(f"{DC}rights") is None


def test_deterministic(provenance: Provenance) -> None:
    assert xmp_packet(provenance) == xmp_packet(dataclasses.replace(provenance))
