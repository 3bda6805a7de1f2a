package shopifytest

import (
	"bytes"
	"fmt"
	"image"
	_ "image/gif" // decoders the fake accepts, like Shopify
	_ "image/jpeg"
	_ "image/png"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	_ "golang.org/x/image/webp"
)

// Shopify's image limits.
const maxImageSide = 4472

func (s *Store) newFile(sh *shopState, name, alt string) *file {
	now := s.opts.Now()
	f := &file{id: s.newID(), filename: name, alt: alt, status: "UPLOADED", createdAt: now, updatedAt: now}
	sh.files[f.id] = f
	return f
}

// reprocess starts (again) the asynchronous media pipeline for f from src: UPLOADED at once,
// PROCESSING after half the delay, READY (bytes fetched and decodable) or FAILED after the
// delay. Called with s.mu held.
func (s *Store) reprocess(sh *shopState, f *file, src string) {
	s.process(f, src, func() ([]byte, error) { return s.loadSource(src) })
}

func (s *Store) process(f *file, src string, load func() ([]byte, error)) {
	f.gen++
	gen := f.gen
	f.status, f.source, f.errCode, f.errMsg = "UPLOADED", src, "", ""
	select {
	case <-s.done:
		return // closing: nothing may start
	default:
	}
	if s.stalled {
		// Shopify sometimes leaves a media PROCESSING for hours: it never finishes here.
		f.status = "PROCESSING"
		return
	}
	if s.failFiles > 0 {
		s.failFiles--
		load = func() ([]byte, error) { return nil, fmt.Errorf("source of %s could not be fetched", f.filename) }
	}
	delay := s.opts.MediaProcessingDelay
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		if !s.sleep(delay / 2) {
			return
		}
		s.mu.Lock()
		if f.gen == gen {
			f.status = "PROCESSING"
		}
		s.mu.Unlock()
		data, err := load()
		var cfg image.Config
		var format string
		code := "IMAGE_DOWNLOAD_FAILURE"
		if err == nil {
			code = "IMAGE_PROCESSING_FAILURE"
			cfg, format, err = image.DecodeConfig(bytes.NewReader(data))
			if err == nil && (cfg.Width > maxImageSide || cfg.Height > maxImageSide) {
				code, err = "INVALID_IMAGE_RESOLUTION", fmt.Errorf("image is %dx%d, larger than %d px", cfg.Width, cfg.Height, maxImageSide)
			}
			if err == nil {
				_, _, err = image.Decode(bytes.NewReader(data)) // truncated files must fail too
			}
		}
		if !s.sleep(delay - delay/2) {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if f.gen != gen {
			return // superseded by a newer replacement
		}
		f.updatedAt = s.opts.Now()
		if err != nil {
			f.status, f.errCode, f.errMsg = "FAILED", code, err.Error()
			return
		}
		f.status, f.data, f.mime, f.width, f.height = "READY", data, "image/"+format, cfg.Width, cfg.Height
		f.version++
	}()
}

// StallProcessing makes media (re)processed from now on stay PROCESSING forever while on is
// true, as a media stuck at Shopify does.
func (s *Store) StallProcessing(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stalled = on
}

// FailNextProcessing makes the next n media processings end FAILED (IMAGE_DOWNLOAD_FAILURE), as
// when Shopify cannot fetch a source.
func (s *Store) FailNextProcessing(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failFiles += n
}

// sleep waits d unless the store closes first.
func (s *Store) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
}

// loadSource fetches an originalSource. Staged uploads are read from the store itself (their
// resource URLs are private, as on Google Cloud Storage); anything else is fetched over HTTP.
func (s *Store) loadSource(src string) ([]byte, error) {
	if key, ok := strings.CutPrefix(src, s.srv.URL+"/staged/"); ok {
		key, _ = url.PathUnescape(key)
		s.mu.Lock()
		obj := s.staged[key]
		s.mu.Unlock()
		if obj == nil || !obj.uploaded {
			return nil, fmt.Errorf("staged upload %s was never uploaded", key)
		}
		return obj.data, nil
	}
	resp, err := s.fetch.Get(src)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", src, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download %s: HTTP %d", src, resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, s.opts.MaxImageBytes+1))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", src, err)
	}
	if int64(len(data)) > s.opts.MaxImageBytes {
		return nil, fmt.Errorf("download %s: larger than %d bytes", src, s.opts.MaxImageBytes)
	}
	return data, nil
}

// handleCDN serves READY images at /cdn/s/files/1/{shop number}/files/{filename}?v=N, like
// cdn.shopify.com. Unknown or not-ready files are 404.
func (s *Store) handleCDN(w http.ResponseWriter, r *http.Request) {
	num, _ := strconv.Atoi(r.PathValue("num"))
	name := r.PathValue("filename")
	s.mu.Lock()
	var data []byte
	var mime string
	if sh := s.byNum[num]; sh != nil {
		if f := sh.fileByName(name); f != nil && f.status == "READY" {
			data, mime = f.data, f.mime
		}
	}
	s.mu.Unlock()
	if data == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", mime)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Header().Set("Cache-Control", "public, max-age=31536000")
	_, _ = w.Write(data)
}
