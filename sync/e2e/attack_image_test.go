package e2e_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/shopify/shopifytest"
)

// pngHeader is a PNG signature and an IHDR declaring w×h RGBA, then the
// given chunks; a full decode would allocate w*h*4 bytes.
func pngHeader(w, h uint32, chunks ...[]byte) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6
	b.Write(pngChunk("IHDR", ihdr))
	for _, c := range chunks {
		b.Write(c)
	}
	return b.Bytes()
}

func pngChunk(kind string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(len(data)))
	b.WriteString(kind)
	b.Write(data)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(kind), data...)))
	return b.Bytes()
}

// gifHeader is a GIF whose logical screen is w×h, with no image in it.
func gifHeader(w, h uint16) []byte {
	b := []byte("GIF89a")
	b = binary.LittleEndian.AppendUint16(b, w)
	b = binary.LittleEndian.AppendUint16(b, h)
	return append(b, 0, 0, 0, ';')
}

// webpCanvas is an extended WEBP (VP8X) declaring a w×h canvas.
func webpCanvas(w, h uint32) []byte {
	chunk := []byte("VP8X\x0a\x00\x00\x00\x00\x00\x00\x00")
	chunk = append(chunk, byte(w-1), byte((w-1)>>8), byte((w-1)>>16), byte(h-1), byte((h-1)>>8), byte((h-1)>>16))
	b := append([]byte("RIFF\x00\x00\x00\x00WEBP"), chunk...)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-8))
	return b
}

// jpegFrame is a JFIF JPEG whose frame header declares w×h, with no scan.
func jpegFrame(w, h uint16) []byte {
	b := []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0}
	b = append(b, 0xFF, 0xC0, 0x00, 0x11, 0x08)
	b = binary.BigEndian.AppendUint16(b, h)
	b = binary.BigEndian.AppendUint16(b, w)
	b = append(b, 3, 1, 0x22, 0, 2, 0x11, 0, 3, 0x11, 0)
	return append(b, 0xFF, 0xD9)
}

func smallGIF() []byte {
	img := image.NewPaletted(image.Rect(0, 0, 40, 30), []color.Color{color.White, color.Black})
	for i := range img.Pix {
		img.Pix[i] = uint8(i / 7 % 2)
	}
	var b bytes.Buffer
	gif.Encode(&b, img, nil)
	return b.Bytes()
}

// hostileImage is what a hostile server answers for a processed image.
type hostileImage struct {
	name        string
	contentType string
	body        []byte
	length      int64 // Content-Length announced, when not the body's
	rules       []string
}

func hostileImages() []hostileImage {
	jpg := shopifytest.SampleJPEG(64, 48, sand)
	png := shopifytest.SamplePNG(64, 48, sand)
	gf := smallGIF()
	sof := bytes.Index(jpg, []byte{0xFF, 0xDA}) // start of scan: the header ends here
	script := []byte(`<html><body><script>window.__pwned=1</script></body></html>`)
	size, typ, dims := []string{"(size)"}, []string{"(type)"}, []string{"(dimensions)"}
	return []hostileImage{
		{"21 MB announced", "image/png", png, 21 << 20, size},
		{"21 MB streamed", "image/png", append(bytes.Clone(png), make([]byte, 21<<20)...), -1, append(size, "(type)")},
		{"empty body", "image/png", nil, 0, typ},
		{"PNG cut in its header", "image/png", png[:20], 0, typ},
		{"PNG cut in its pixels", "image/png", png[:len(png)/2], 0, typ},
		{"PNG without its end", "image/png", png[:len(png)-12], 0, typ},
		{"JPEG cut in its header", "image/jpeg", jpg[:sof/2], 0, typ},
		{"JPEG cut in its pixels", "image/jpeg", jpg[:len(jpg)/2], 0, typ},
		{"JPEG without its end marker", "image/jpeg", jpg[:len(jpg)-2], 0, typ},
		{"GIF cut in its pixels", "image/gif", gf[:len(gf)/2], 0, typ},
		{"WEBP cut short", "image/webp", webpCanvas(64, 48)[:20], 0, typ},
		{"PNG declaring 100000×100000", "image/png", pngHeader(100000, 100000, pngChunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01}), pngChunk("IEND", nil)), 0, dims},
		{"PNG declaring 4472×4473", "image/png", pngHeader(4472, 4473, pngChunk("IEND", nil)), 0, dims},
		{"PNG declaring 0×0", "image/png", pngHeader(0, 0, pngChunk("IEND", nil)), 0, append(dims, "(type)")},
		{"GIF declaring 65535×65535", "image/gif", gifHeader(65535, 65535), 0, dims},
		{"WEBP declaring 16384×16384", "image/webp", webpCanvas(16384, 16384), 0, dims},
		{"JPEG declaring 65500×65500", "image/jpeg", jpegFrame(65500, 65500), 0, dims},
		{"JPEG header with HTML after it", "image/jpeg", append(bytes.Clone(jpg[:sof]), script...), 0, typ},
		{"JPEG with a script after its end", "image/jpeg", append(bytes.Clone(jpg), script...), 0, typ},
		{"PNG with PHP after its end", "image/png", append(bytes.Clone(png), []byte("<?php system($_GET['c']); ?>")...), 0, typ},
		{"GIF with a ZIP after it (GIFAR)", "image/gif", append(bytes.Clone(gf), []byte("PK\x03\x04\x14\x00\x00\x00\x08\x00PK\x05\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")...), 0, typ},
		{"SVG with a script", "image/svg+xml", []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="window.__pwned=1"><script>window.__pwned=1</script></svg>`), 0, typ},
		{"SVG served as image/png", "image/png", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), 0, typ},
		{"HTML served as image/png", "image/png", script, 0, typ},
		{"GIF89a then HTML", "image/gif", append([]byte("GIF89a"), script...), 0, append(dims, "(type)")},
		{"PDF", "image/png", []byte("%PDF-1.7\n1 0 obj<<>>endobj\n%%EOF"), 0, typ},
		{"TIFF", "image/tiff", []byte("II*\x00\x08\x00\x00\x00\x00\x00"), 0, typ},
		{"BMP", "image/bmp", []byte("BM\x1e\x00\x00\x00\x00\x00\x00\x00\x1a\x00\x00\x00\x0c\x00\x00\x00\x01\x00\x01\x00\x01\x00\x18\x00\x00\x00\xff\x00"), 0, typ},
	}
}

func attackImages(t *testing.T, db *gorm.DB, tally *attackTally) {
	hostile := hostileImages()
	byPath := map[string]hostileImage{}
	urls := make([]string, len(hostile))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		img, ok := byPath[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", img.contentType)
		switch {
		case img.length > 0:
			w.Header().Set("Content-Length", strconv.FormatInt(img.length, 10))
		case img.length < 0:
			w.(http.Flusher).Flush() // chunked: no length announced
		}
		w.Write(img.body)
	}))
	t.Cleanup(srv.Close)
	for i, img := range hostile {
		p := fmt.Sprintf("/final/%d.png", i)
		byPath[p] = img
		urls[i] = srv.URL + p
	}
	h, rewrite, jobs, before := runDownloadAttack(t, db, "hostile", urls, false)
	for _, j := range jobs {
		u := rewrite.urlOf(strp(j.Ticket))
		img := byPath[strings.TrimPrefix(u, srv.URL)]
		tally.try(t, "hostile images", img.name, func() string {
			if u == "" {
				return "job " + fmt.Sprint(j.ID) + " was never given an image"
			}
			if j.State != models.JobFailed || !strings.Contains(j.Error, "was refused") {
				return fmt.Sprintf("job %s: %q", j.State, j.Error)
			}
			for _, r := range img.rules {
				if strings.Contains(eventsOf(t, db, j.ID), r) {
					return ""
				}
			}
			return fmt.Sprintf("refused for another reason than %v: %s", img.rules, eventsOf(t, db, j.ID))
		})
	}
	tally.effect(t, "hostile images", func() string {
		if n := h.rtb.Submissions()[rtbEmail]; n != len(urls) {
			return fmt.Sprintf("%d submissions for %d images", n, len(urls))
		}
		if n := storeWrites(h); n != 0 {
			return fmt.Sprintf("%d writes to the store", n)
		}
		return galleryChange(before, snapshots(h, before[0].ID))
	}())
}
