package shopifytest

import (
	"bytes"
	"image/color"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const (
	docStage  = `mutation($in: [StagedUploadInput!]!) { stagedUploadsCreate(input: $in) { stagedTargets { url resourceUrl parameters { name value } } userErrors { field message } } }`
	docUpdate = `mutation($f: [FileUpdateInput!]!) { fileUpdate(files: $f) { files { id } userErrors { field message code } } }`
	docCreate = `mutation($f: [FileCreateInput!]!) { fileCreate(files: $f) { files { id fileStatus } userErrors { field message code } } }`
)

// stage uploads data through a staged target and returns its resourceUrl.
func stage(t *testing.T, s *Store, tok, name, mime string, data []byte) string {
	t.Helper()
	r := gql(t, s, tok, docStage, map[string]any{"in": []any{map[string]any{"filename": name, "mimeType": mime, "resource": "IMAGE", "httpMethod": "POST"}}})
	target := dig(r.Data, "stagedUploadsCreate", "stagedTargets", 0)
	if target == nil {
		t.Fatalf("no target: %s", r.Raw)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, p := range dig(target, "parameters").([]any) {
		_ = mw.WriteField(dig(p, "name").(string), dig(p, "value").(string))
	}
	fw, _ := mw.CreateFormFile("file", name)
	_, _ = fw.Write(data)
	_ = mw.Close()
	resp, err := http.Post(dig(target, "url").(string), mw.FormDataContentType(), &body)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("upload: %v %v", resp, err)
	}
	resp.Body.Close()
	return dig(target, "resourceUrl").(string)
}

func TestStagedUploadIsStrict(t *testing.T) {
	s := newStore(t, Options{})
	tok := s.IssueAccessToken(testShop, 0)
	res := stage(t, s, tok, "a.png", "image/png", SamplePNG(2, 2, color.White))
	resp, err := http.Get(res)
	if err != nil || resp.StatusCode != 403 {
		t.Fatalf("staged object readable: %v %v", resp, err)
	}
	resp.Body.Close()
	// A form without the signed parameters is refused.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("key", "tmp/1/products/x/a.png")
	fw, _ := mw.CreateFormFile("file", "a.png")
	_, _ = fw.Write([]byte("x"))
	_ = mw.Close()
	resp, err = http.Post(s.URL()+"/staged/upload", mw.FormDataContentType(), &body)
	if err != nil || resp.StatusCode != 403 {
		t.Fatalf("unsigned upload: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestFileUpdateInPlaceKeepsIdentity(t *testing.T) {
	s := newStore(t, Options{})
	tok := s.IssueAccessToken(testShop, 0)
	rec := sampleProduct(t, s)
	// Not READY yet: refused like Shopify.
	r := gql(t, s, tok, docUpdate, map[string]any{"f": []any{map[string]any{"id": rec.MediaIDs[1], "alt": "x"}}})
	if dig(r.Data, "fileUpdate", "userErrors", 0, "code") != "NON_READY_STATE" {
		t.Fatalf("update of a processing file: %s", r.Raw)
	}
	before := waitReady(t, s, rec.ID)
	newJPG := SampleJPEG(6, 6, color.Black)
	src := stage(t, s, tok, "whatever-name.jpg", "image/jpeg", newJPG)
	r = gql(t, s, tok, docUpdate, map[string]any{"f": []any{map[string]any{"id": rec.MediaIDs[1], "originalSource": src}}})
	if errs := dig(r.Data, "fileUpdate", "userErrors").([]any); len(errs) > 0 {
		t.Fatal(r.Raw)
	}
	after := waitReady(t, s, rec.ID)
	m := after.Media[1]
	if m.ID != rec.MediaIDs[1] || m.Filename != "back.jpg" || !bytes.Equal(m.Data, newJPG) || m.Version != before.Media[1].Version+1 || m.Alt != "back" {
		t.Fatalf("replaced media = %+v", m)
	}
	if after.Variants[1].MediaIDs[0] != rec.MediaIDs[1] {
		t.Fatal("variant link lost by in-place replace")
	}
	png := stage(t, s, tok, "back.png", "image/png", SamplePNG(2, 2, color.White))
	r = gql(t, s, tok, docUpdate, map[string]any{"f": []any{map[string]any{"id": rec.MediaIDs[1], "originalSource": png}}})
	if dig(r.Data, "fileUpdate", "userErrors", 0, "code") != "MISMATCHED_FILENAME_AND_ORIGINAL_SOURCE" {
		t.Fatalf("other extension accepted: %s", r.Raw)
	}
	r = gql(t, s, tok, docUpdate, map[string]any{"f": []any{map[string]any{"id": "gid://shopify/MediaImage/999999", "alt": "x"}}})
	if dig(r.Data, "fileUpdate", "userErrors", 0, "code") != "FILE_DOES_NOT_EXIST" {
		t.Fatalf("unknown id: %s", r.Raw)
	}
}

func TestDetachKeepsFileAndDuplicateNames(t *testing.T) {
	s := newStore(t, Options{})
	tok := s.IssueAccessToken(testShop, 0)
	rec := sampleProduct(t, s)
	waitReady(t, s, rec.ID)
	r := gql(t, s, tok, docUpdate, map[string]any{"f": []any{map[string]any{"id": rec.MediaIDs[0], "referencesToRemove": []any{rec.ID}}}})
	if errs := dig(r.Data, "fileUpdate", "userErrors").([]any); len(errs) > 0 {
		t.Fatal(r.Raw)
	}
	snap := s.Product(testShop, rec.ID)
	if len(snap.Media) != 2 || snap.Media[0].ID != rec.MediaIDs[1] || len(snap.Variants[0].MediaIDs) != 0 {
		t.Fatalf("after detach: %+v", snap)
	}
	kept := false
	for _, f := range snap.Files {
		kept = kept || f.ID == rec.MediaIDs[0] && len(f.ProductIDs) == 0 && f.Status == "READY"
	}
	if !kept {
		t.Fatal("detached file left Files")
	}

	src := stage(t, s, tok, "front.png", "image/png", SamplePNG(2, 2, color.White))
	r = gql(t, s, tok, docCreate, map[string]any{"f": []any{map[string]any{"originalSource": src, "filename": "front.png", "duplicateResolutionMode": "RAISE_ERROR"}}})
	if dig(r.Data, "fileCreate", "userErrors", 0, "code") != "FILENAME_ALREADY_EXISTS" {
		t.Fatalf("clash with RAISE_ERROR: %s", r.Raw)
	}
	r = gql(t, s, tok, docCreate, map[string]any{"f": []any{map[string]any{"originalSource": src, "filename": "front.png"}}})
	if dig(r.Data, "fileCreate", "files", 0, "fileStatus") != "UPLOADED" {
		t.Fatalf("APPEND_UUID create: %s", r.Raw)
	}
	r = gql(t, s, tok, docCreate, map[string]any{"f": []any{map[string]any{"originalSource": src, "filename": "front.jpg"}}})
	if dig(r.Data, "fileCreate", "userErrors", 0, "code") != "MISMATCHED_FILENAME_AND_ORIGINAL_SOURCE" {
		t.Fatalf("extension mismatch: %s", r.Raw)
	}
	waitFiles(t, s)
	names := 0
	for _, f := range s.Product(testShop, rec.ID).Files {
		if strings.HasPrefix(f.Filename, "front_") && strings.HasSuffix(f.Filename, ".png") {
			names++
		}
	}
	if names != 1 {
		t.Fatal("APPEND_UUID did not suffix the clashing name")
	}
}

func waitFiles(t *testing.T, s *Store) {
	t.Helper()
	s.bg.Wait() // every processing goroutine started so far has finished
}

func TestReorderAndVariantLinks(t *testing.T) {
	s := newStore(t, Options{})
	tok := s.IssueAccessToken(testShop, 0)
	rec := sampleProduct(t, s)
	waitReady(t, s, rec.ID)
	r := gql(t, s, tok, `mutation($id: ID!, $m: [MoveInput!]!) { productReorderMedia(id: $id, moves: $m) { job { id done } mediaUserErrors { code } } }`,
		map[string]any{"id": rec.ID, "m": []any{map[string]any{"id": rec.MediaIDs[2], "newPosition": "0"}, map[string]any{"id": rec.MediaIDs[0], "newPosition": 5}}})
	jobID, _ := dig(r.Data, "productReorderMedia", "job", "id").(string)
	if jobID == "" {
		t.Fatal(r.Raw)
	}
	poll := func() bool {
		r := gql(t, s, tok, `query($id: ID!) { job(id: $id) { done } }`, map[string]any{"id": jobID})
		return dig(r.Data, "job", "done") == true
	}
	if poll() {
		t.Fatal("job done on the first poll: clients would not learn to poll")
	}
	if !poll() {
		t.Fatal("job never done")
	}
	snap := s.Product(testShop, rec.ID)
	got := []string{snap.Media[0].ID, snap.Media[1].ID, snap.Media[2].ID}
	if got[0] != rec.MediaIDs[2] || got[1] != rec.MediaIDs[1] || got[2] != rec.MediaIDs[0] {
		t.Fatalf("order = %v", got)
	}
	appendDoc := `mutation($p: ID!, $v: [ProductVariantAppendMediaInput!]!) { productVariantAppendMedia(productId: $p, variantMedia: $v) { userErrors { code } } }`
	r = gql(t, s, tok, appendDoc, map[string]any{"p": rec.ID, "v": []any{map[string]any{"variantId": rec.VariantIDs[0], "mediaIds": []any{rec.MediaIDs[2]}}}})
	if dig(r.Data, "productVariantAppendMedia", "userErrors", 0, "code") != "PRODUCT_VARIANT_ALREADY_HAS_MEDIA" {
		t.Fatalf("second media on a variant: %s", r.Raw)
	}
	r = gql(t, s, tok, appendDoc, map[string]any{"p": rec.ID, "v": []any{map[string]any{"variantId": rec.VariantIDs[2], "mediaIds": []any{rec.MediaIDs[2]}}}})
	if errs := dig(r.Data, "productVariantAppendMedia", "userErrors").([]any); len(errs) > 0 {
		t.Fatal(r.Raw)
	}
	if v := s.Product(testShop, rec.ID).Variants[2]; len(v.MediaIDs) != 1 || v.MediaIDs[0] != rec.MediaIDs[2] {
		t.Fatalf("variant L = %+v", v)
	}
}

// Shopify runs a reorder job whether or not anyone polls it: a worker that
// started one and died leaves moves that still apply, later.
func TestAReorderNobodyPollsIsDoneByItself(t *testing.T) {
	s := newStore(t, Options{JobDelay: 100 * time.Millisecond})
	tok := s.IssueAccessToken(testShop, 0)
	rec := sampleProduct(t, s)
	waitReady(t, s, rec.ID)
	r := gql(t, s, tok, `mutation($id: ID!, $m: [MoveInput!]!) { productReorderMedia(id: $id, moves: $m) { job { id done } mediaUserErrors { code } } }`,
		map[string]any{"id": rec.ID, "m": []any{map[string]any{"id": rec.MediaIDs[2], "newPosition": "0"}}})
	if dig(r.Data, "productReorderMedia", "job", "done") != false {
		t.Fatalf("the reorder was done at once: %s", r.Raw)
	}
	if got := s.Product(testShop, rec.ID).Media[0].ID; got != rec.MediaIDs[0] {
		t.Fatalf("the gallery changed before the job was done: first media %s", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Product(testShop, rec.ID).Media[0].ID != rec.MediaIDs[2] {
		if time.Now().After(deadline) {
			t.Fatal("a reorder nobody polled was never done")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExternalSourceFetchedAndServed(t *testing.T) {
	s := newStore(t, Options{})
	tok := s.IssueAccessToken(testShop, 0)
	rec := sampleProduct(t, s)
	img := SamplePNG(3, 3, color.White)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/img/processed.png" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(img)
	}))
	defer origin.Close()
	doc := `mutation($p: ProductUpdateInput!, $m: [CreateMediaInput!]) { productUpdate(product: $p, media: $m) { product { id } userErrors { field message } } }`
	r := gql(t, s, tok, doc, map[string]any{"p": map[string]any{"id": rec.ID}, "m": []any{
		map[string]any{"originalSource": origin.URL + "/img/processed.png", "mediaContentType": "IMAGE", "alt": "new"},
		map[string]any{"originalSource": origin.URL + "/img/missing.png", "mediaContentType": "IMAGE"},
	}})
	if errs := dig(r.Data, "productUpdate", "userErrors").([]any); len(errs) > 0 {
		t.Fatal(r.Raw)
	}
	snap := waitReady(t, s, rec.ID)
	added, failed := snap.Media[3], snap.Media[4]
	if added.Status != "READY" || !bytes.Equal(added.Data, img) || added.Filename != "processed.png" || added.Alt != "new" {
		t.Fatalf("added = %+v", added)
	}
	if failed.Status != "FAILED" || failed.URL != "" {
		t.Fatalf("unfetchable source = %+v", failed)
	}
	resp, err := http.Get(added.URL)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("CDN: %v %v", resp, err)
	}
	resp.Body.Close()
	r = gql(t, s, tok, doc, map[string]any{"p": map[string]any{"id": "gid://shopify/Product/999999"}, "m": []any{}})
	if dig(r.Data, "productUpdate", "userErrors", 0, "message") != "Product does not exist" {
		t.Fatalf("unknown product: %s", r.Raw)
	}
}
