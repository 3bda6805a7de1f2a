package sync

import (
	"crypto/sha256"
	"encoding/base32"
	"net/url"
	"path"
	"strings"
	"unicode"

	"rtbshopify/models"
	"rtbshopify/models/text"
)

// Suffixes of the files the app makes, after the original's stem: a
// merchant finds "blue-mug-background-removed-….png" beside "blue-mug.jpg"
// in Files, and the kept copy as "blue-mug-original-….jpg".
const (
	processedSuffix = "background-removed"
	originalSuffix  = "original"
)

// processedName is the file name of a processed image that becomes a new
// file: the original's stem, the suffix, a tag and ext (the extension of
// the bytes uploaded).
func processedName(j *models.ImageJob, ext string) string {
	return fileNameFor(j, processedSuffix, ext)
}

// originalName is the file name of the kept copy of an original.
func originalName(j *models.ImageJob, ext string) string { return fileNameFor(j, originalSuffix, ext) }

// fileNameFor names a file the app makes for a job. The short tag comes
// from the image's media id: two products' "mug.jpg" never give the same
// name, so the name stays unique to the image, which is how a retry (or
// another worker after a crash) finds the file it made instead of making a
// second one, and never takes another image's file for its own.
func fileNameFor(j *models.ImageJob, suffix, ext string) string {
	sum := sha256.Sum256([]byte(j.MediaID))
	tag := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:])[:6])
	return stemOf(j.OriginalFilename) + "-" + suffix + "-" + tag + ext
}

// stemOf is a file name without its extension, as a merchant reads it
// (percent-escapes decoded), kept to letters, digits, '-', '_' and '.', so
// it is safe in a Files search and a URL path; "image" when nothing is left.
func stemOf(name string) string {
	if dec, err := url.PathUnescape(name); err == nil {
		name = dec
	}
	name = strings.TrimSuffix(name, path.Ext(name))
	var b strings.Builder
	dash := false
	for _, r := range name {
		ok := unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '.'
		if !ok {
			if !dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = true
			continue
		}
		b.WriteRune(r)
		dash = false
	}
	stem := strings.Trim(text.Truncate(b.String(), 100), "-.")
	if stem == "" {
		return "image"
	}
	return stem
}
