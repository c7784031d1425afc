// Package dicomtest writes DICOM bytes by hand for tests that need files
// no encoder would make: hostile nesting, bombs, broken lengths.
package dicomtest

import "encoding/binary"

// Element encodes one explicit VR little endian element: its header
// with the given (possibly lying) length, then value. Items and
// delimiters (group FFFE) have no VR.
func Element(group, elem uint16, vr string, length uint32, value []byte) []byte {
	b := binary.LittleEndian.AppendUint16(nil, group)
	b = binary.LittleEndian.AppendUint16(b, elem)
	switch {
	case group == 0xFFFE:
		b = binary.LittleEndian.AppendUint32(b, length)
	case vr == "OB" || vr == "OW" || vr == "SQ" || vr == "UN" || vr == "UT":
		b = append(b, vr[0], vr[1], 0, 0)
		b = binary.LittleEndian.AppendUint32(b, length)
	default:
		b = append(b, vr[0], vr[1])
		b = binary.LittleEndian.AppendUint16(b, uint16(length))
	}
	return append(b, value...)
}

// Part10 is a preamble and a file meta group naming transferSyntax (a CT
// image storage SOP class, a fixed instance UID).
func Part10(transferSyntax string) []byte {
	ts := []byte(transferSyntax)
	if len(ts)%2 == 1 {
		ts = append(ts, 0)
	}
	class := []byte("1.2.840.10008.5.1.4.1.1.2\x00")
	inst := []byte("1.2.3.4.5.6.7.8.9\x00")
	meta := append(Element(0x0002, 0x0002, "UI", uint32(len(class)), class), Element(0x0002, 0x0003, "UI", uint32(len(inst)), inst)...)
	meta = append(meta, Element(0x0002, 0x0010, "UI", uint32(len(ts)), ts)...)
	gl := Element(0x0002, 0x0000, "UL", 4, binary.LittleEndian.AppendUint32(nil, uint32(len(meta))))
	return append(append(append(make([]byte, 128), "DICM"...), gl...), meta...)
}
