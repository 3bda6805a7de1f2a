package admin_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"rtbshopify/shopify/admin"
	"rtbshopify/shopify/shopifytest"
)

// uploadSink answers staged uploads itself, reading the form as it streams
// in, and passes every other request to the fake store.
type uploadSink struct {
	length int64    // the upload's Content-Length
	file   [32]byte // SHA-256 of its file part
	fields []string // form fields in order
}

func (u *uploadSink) RoundTrip(r *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(r.URL.Path, "/staged/upload") {
		return http.DefaultTransport.RoundTrip(r)
	}
	defer r.Body.Close()
	u.length = r.ContentLength
	_, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	mr := multipart.NewReader(r.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		u.fields = append(u.fields, p.FormName())
		h := sha256.New()
		io.Copy(h, p)
		if p.FormName() == "file" {
			copy(u.file[:], h.Sum(nil))
		}
	}
	return &http.Response{StatusCode: 201, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
}

// A staged upload sends the file from the caller's bytes: the form around
// it is built once and the image is never copied into a request body, so
// several workers uploading 20 MB images hold each image once.
func TestStageUploadStreamsTheFile(t *testing.T) {
	s := shopifytest.New(shopifytest.Options{})
	t.Cleanup(s.Close)
	s.AddShop(shop)
	sink := &uploadSink{}
	c := admin.New(admin.Options{Shop: shop, Token: admin.StaticToken(s.IssueAccessToken(shop, 0)), BaseURL: s.URL(),
		BaseDelay: 5 * time.Millisecond, HTTPClient: &http.Client{Transport: sink}})
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MB

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := c.StageUpload(ctx(t), "big.jpg", "image/jpeg", data); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)

	if sink.file != sha256.Sum256(data) {
		t.Fatal("the file part is not the image's bytes")
	}
	if sink.length <= int64(len(data)) || sink.length > int64(len(data))+4096 {
		t.Errorf("Content-Length %d for a %d-byte file: want the whole form's length, announced", sink.length, len(data))
	}
	if last := sink.fields[len(sink.fields)-1]; last != "file" || len(sink.fields) < 2 {
		t.Errorf("form fields %v: want the signed parameters, then the file last", sink.fields)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(len(data))/8 {
		t.Errorf("uploading a %d-byte file allocated %d bytes: the file was copied", len(data), alloc)
	}
}
