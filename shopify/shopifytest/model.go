package shopifytest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

type product struct {
	id                         int64
	title, productType, vendor string
	status                     string
	tags                       []string
	createdAt, updatedAt       time.Time
	media                      []int64 // file ids in display order
	variants                   []*variant
}

type variant struct {
	id    int64
	title string
	media []int64 // Shopify allows one media per variant
}

// file is a MediaImage: in Shopify a product image is also an entry of Files, same id.
type file struct {
	id                   int64
	filename             string
	alt                  string
	status               string // UPLOADED | PROCESSING | READY | FAILED
	data                 []byte
	mime                 string
	width, height        int
	version              int // bumps on every successful (re)processing: the CDN ?v=
	source               string
	errCode, errMsg      string
	gen                  int // processing generation, so a stale result never lands
	createdAt, updatedAt time.Time
}

type job struct {
	id    string
	polls int
	apply func() // run when the job completes
	done  bool
}

// finish completes the job, once; the store's lock is held.
func (j *job) finish() {
	if !j.done {
		j.apply()
		j.done = true
	}
}

// addJob keeps a new job, to be polled, and completes it after JobDelay
// if nobody has by then. Shopify's productReorderMedia reference says the
// reorder "processes asynchronously" and that its Job is polled "to
// determine when the operation completes": polling observes the job, it
// does not run it (see Options.JobDelay).
func (s *Store) addJob(sh *shopState, j *job) {
	sh.jobs[j.id] = j
	time.AfterFunc(s.opts.JobDelay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		j.finish()
	})
}

type stagedObject struct {
	filename, mime string
	data           []byte
	uploaded       bool
	size           int64 // declared fileSize; -1 when not declared
}

func gid(kind string, id int64) string { return fmt.Sprintf("gid://shopify/%s/%d", kind, id) }

// parseGID returns the numeric id of gid://shopify/{kind}/N, or false.
func parseGID(s, kind string) (int64, bool) {
	rest, ok := strings.CutPrefix(s, "gid://shopify/"+kind+"/")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	return n, err == nil && n > 0
}

func (sh *shopState) productOf(fileID int64) []*product {
	var out []*product
	for _, p := range sh.products {
		if slices.Contains(p.media, fileID) {
			out = append(out, p)
		}
	}
	return out
}

func (sh *shopState) fileByName(name string) *file {
	for _, f := range sh.files {
		if f.filename == name {
			return f
		}
	}
	return nil
}

func (s *Store) cdnURL(sh *shopState, f *file) string {
	return fmt.Sprintf("%s/cdn/s/files/1/%d/files/%s?v=%d", s.srv.URL, sh.num, url.PathEscape(f.filename), f.version)
}

// ext is a file name's extension exactly as written: Shopify compares extensions case included
// (".JPG" is not ".jpg", ".jpeg" is not ".jpg"), and a name may have none.
func ext(name string) string { return path.Ext(name) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// removeID drops id from list, keeping order.
func removeID(list []int64, id int64) []int64 {
	return slices.DeleteFunc(list, func(x int64) bool { return x == id })
}
