package rtb

import (
	"bytes"
	"encoding/binary"
)

// A header that decodes says nothing of the rest of the file: a download
// cut short, or an image with a script or an archive after its end (a
// polyglot), would reach Shopify, which either fails it after the app has
// already swapped the product's bytes, or serves it. imageEnd walks each
// format's own structure, without decoding a pixel, to the point where the
// format says the file ends, which must be the end of the data.

// imageEnd returns the length of the image at the start of data by its
// format's structure, or -1 when the structure breaks before its end.
func imageEnd(format string, data []byte) int {
	switch format {
	case "jpeg":
		return jpegEnd(data)
	case "png":
		return pngEnd(data)
	case "gif":
		return gifEnd(data)
	case "webp":
		return webpEnd(data)
	}
	return -1
}

// jpegEnd follows the segments and the entropy-coded scans to EOI.
func jpegEnd(b []byte) int {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return -1
	}
	i := 2
	for i+1 < len(b) {
		if b[i] != 0xFF {
			return -1
		}
		m := b[i+1]
		switch {
		case m == 0xFF: // fill byte before a marker
			i++
			continue
		case m == 0xD9: // EOI
			return i + 2
		case m == 0x01 || m >= 0xD0 && m <= 0xD7: // markers without a length
			i += 2
			continue
		}
		if i+4 > len(b) {
			return -1
		}
		n := int(binary.BigEndian.Uint16(b[i+2:]))
		if n < 2 {
			return -1
		}
		i += 2 + n
		if m == 0xDA { // SOS: entropy-coded data up to the next marker
			for i+1 < len(b) && (b[i] != 0xFF || b[i+1] == 0x00 || b[i+1] >= 0xD0 && b[i+1] <= 0xD7) {
				i++
			}
		}
	}
	return -1
}

var pngIEND = []byte("IEND")

// pngEnd follows the chunks to IEND.
func pngEnd(b []byte) int {
	i := 8
	for i+12 <= len(b) {
		n := int(binary.BigEndian.Uint32(b[i:]))
		if n < 0 || n > len(b)-i-12 {
			return -1
		}
		end := i + 12 + n
		if bytes.Equal(b[i+4:i+8], pngIEND) {
			return end
		}
		i = end
	}
	return -1
}

// gifEnd follows the blocks to the trailer.
func gifEnd(b []byte) int {
	if len(b) < 13 {
		return -1
	}
	i := 13
	if f := b[10]; f&0x80 != 0 {
		i += 3 << (f&7 + 1)
	}
	for i < len(b) {
		switch b[i] {
		case 0x3B: // trailer
			return i + 1
		case 0x21: // extension: label, then sub-blocks
			i = gifSubBlocks(b, i+2)
		case 0x2C: // image descriptor, local colour table, LZW code size, sub-blocks
			if i+10 > len(b) {
				return -1
			}
			f := b[i+9]
			i += 10
			if f&0x80 != 0 {
				i += 3 << (f&7 + 1)
			}
			i = gifSubBlocks(b, i+1)
		default:
			return -1
		}
		if i < 0 {
			return -1
		}
	}
	return -1
}

func gifSubBlocks(b []byte, i int) int {
	for i < len(b) {
		n := int(b[i])
		i++
		if n == 0 {
			return i
		}
		i += n
	}
	return -1
}

// webpEnd checks the RIFF size and that the chunks fill it exactly.
func webpEnd(b []byte) int {
	if len(b) < 12 {
		return -1
	}
	end := 8 + int(binary.LittleEndian.Uint32(b[4:]))
	if end > len(b) || end < 12 {
		return -1
	}
	i := 12
	for i+8 <= end {
		n := int(binary.LittleEndian.Uint32(b[i+4:]))
		if n < 0 || n > end-i-8 {
			return -1
		}
		i += 8 + n + n&1
	}
	if i != end {
		return -1
	}
	return end
}
