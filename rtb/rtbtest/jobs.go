package rtbtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Statuses as documented by the vendor.
const (
	StatusNew          = 10
	StatusInProduction = 60
	StatusFinished     = 70
	StatusDelivered    = 80
)

var statusNames = map[int]string{
	StatusNew:          "New",
	StatusInProduction: "In production",
	StatusFinished:     "Production finished",
	StatusDelivered:    "Delivered",
}

// maxCallbackAttempts is the vendor's documented number of webhook tries.
const maxCallbackAttempts = 3

type job struct {
	ticket, account string
	template        Template
	imageURL        string
	imageURL2       string
	callbackURL     string
	deliveryHours   string
	submitted       time.Time

	delivered   bool
	deliveredAt time.Time
	finalPath   string // relative to the server root, e.g. files/{ticket}/final.png
	lastErr     string

	cbAttempts   int
	cbDone       bool
	nextCallback time.Time
}

// JobInfo is a snapshot of one submitted image.
type JobInfo struct {
	Ticket, Account, TemplateID string
	ImageURL, CallbackURL       string
	DeliveryHours               string
	StatusID                    int
	StatusName                  string
	FinalImageURL               string // relative, as the status answer sends it; "" until delivered
	CallbackAttempts            int
	CallbackDelivered           bool
	LastError                   string // why the last delivery attempt failed
}

// CallbackAttempt is one webhook POST (or a dropped one).
type CallbackAttempt struct {
	Time       time.Time
	Ticket     string
	URL        string
	Attempt    int // 1-based per ticket; duplicates repeat the number
	StatusCode int // 0 when not sent or the request failed
	Err        string
	Duplicate  bool
}

// infoLocked snapshots j at the current time. Callers hold s.mu.
func (s *Server) infoLocked(j *job) JobInfo {
	id := s.statusAt(j, s.now())
	info := JobInfo{
		Ticket: j.ticket, Account: j.account, TemplateID: j.template.ID,
		ImageURL: j.imageURL, CallbackURL: j.callbackURL, DeliveryHours: j.deliveryHours,
		StatusID: id, StatusName: statusNames[id],
		CallbackAttempts: j.cbAttempts, CallbackDelivered: j.cbDone, LastError: j.lastErr,
	}
	if j.delivered {
		info.FinalImageURL = j.finalPath
	}
	return info
}

// statusAt derives the status from the time since submission. 80 needs a
// delivery by Tick, so a job waits at 70 until the fake has really processed it.
func (s *Server) statusAt(j *job, now time.Time) int {
	if j.delivered {
		return StatusDelivered
	}
	age := now.Sub(j.submitted)
	switch {
	case age < s.opts.NewFor:
		return StatusNew
	case age < s.opts.NewFor+s.opts.ProductionFor:
		return StatusInProduction
	default:
		return StatusFinished
	}
}

func (s *Server) due(j *job, now time.Time) bool {
	return !j.delivered && now.Sub(j.submitted) >= s.opts.NewFor+s.opts.ProductionFor+s.opts.QualityCheckFor
}

// Jobs returns a snapshot of every submitted image, oldest first.
func (s *Server) Jobs() []JobInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]JobInfo, len(s.order))
	for i, j := range s.order {
		out[i] = s.infoLocked(j)
	}
	return out
}

// Job returns a snapshot of one ticket.
func (s *Server) Job(ticket string) (JobInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[strings.ToLower(ticket)]
	if !ok {
		return JobInfo{}, false
	}
	return s.infoLocked(j), true
}

// Callbacks returns every webhook attempt so far, oldest first.
func (s *Server) Callbacks() []CallbackAttempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]CallbackAttempt(nil), s.callbacks...)
}

// Tick performs the work that is due on the fake's clock: it delivers every
// image past its stages (download, background removal, file served) and sends
// the webhooks that are due, retrying failed ones at growing intervals. It
// blocks until that work is done; network calls happen without the lock.
func (s *Server) Tick() {
	s.tickMu.Lock()
	defer s.tickMu.Unlock()
	now := s.now()

	s.mu.Lock()
	var deliveries []*job
	for _, j := range s.order {
		if s.due(j, now) {
			deliveries = append(deliveries, j)
		}
	}
	s.mu.Unlock()

	for _, j := range deliveries {
		s.deliver(j, now)
	}

	s.mu.Lock()
	var calls []*job
	for _, j := range s.order {
		if j.delivered && j.callbackURL != "" && !j.cbDone && j.cbAttempts < maxCallbackAttempts && !now.Before(j.nextCallback) {
			calls = append(calls, j)
		}
	}
	s.mu.Unlock()

	for _, j := range calls {
		s.callback(j, now)
	}
}

// deliver produces the final image of j. A failure is recorded and retried on
// the next Tick, as an editor would wait for the source to come back.
func (s *Server) deliver(j *job, now time.Time) {
	s.mu.Lock()
	src, ticket, transparent := j.imageURL, j.ticket, j.template.Transparent
	s.mu.Unlock()

	data, err := s.download(src)
	var out []byte
	var ext, ctype string
	switch r := s.opts.Result; {
	case err != nil:
	case r != nil:
		out, ctype, ext = r.Data, r.ContentType, resultExts[r.ContentType]
	default:
		out, ext, ctype, err = removeBackground(data, transparent)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		j.lastErr = err.Error()
		s.log.Warn("rtbtest: delivery failed", "ticket", ticket, "err", err)
		return
	}
	name := "final" + ext
	s.files[strings.ToLower(ticket)+"/"+name] = file{data: out, contentType: ctype}
	j.finalPath = "files/" + ticket + "/" + name
	j.delivered, j.deliveredAt, j.lastErr = true, now, ""
	j.nextCallback = now
	s.log.Info("rtbtest: image delivered", "ticket", ticket, "file", j.finalPath)
}

var resultExts = map[string]string{"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/gif": ".gif"}

func (s *Server) download(src string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", src, err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download source: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download source: HTTP %d", resp.StatusCode)
	}
	const limit = 20 << 20
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("download source: %w", err)
	}
	if len(data) > limit {
		return nil, fmt.Errorf("download source: larger than %d bytes", limit)
	}
	return data, nil
}

// callback makes one webhook attempt for j (twice with the Duplicate fault).
func (s *Server) callback(j *job, now time.Time) {
	s.mu.Lock()
	j.cbAttempts++
	attempt := j.cbAttempts
	target, ticket := j.callbackURL, j.ticket
	processed := s.srv.URL + "/" + j.finalPath
	drop := s.cbFaults.Drop > 0
	if drop {
		s.cbFaults.Drop--
	}
	dup := s.cbFaults.Duplicate
	s.mu.Unlock()

	rec := CallbackAttempt{Time: now, Ticket: ticket, URL: target, Attempt: attempt}
	if drop {
		rec.Err = "dropped (fault injection)"
	} else {
		rec.StatusCode, rec.Err = s.post(target, ticket, processed)
	}
	ok := rec.StatusCode == http.StatusOK
	var dupRec *CallbackAttempt
	if ok && dup {
		d := CallbackAttempt{Time: now, Ticket: ticket, URL: target, Attempt: attempt, Duplicate: true}
		d.StatusCode, d.Err = s.post(target, ticket, processed)
		dupRec = &d
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.callbacks = append(s.callbacks, rec)
	if dupRec != nil {
		s.callbacks = append(s.callbacks, *dupRec)
	}
	if ok {
		j.cbDone = true
		return
	}
	if i := attempt - 1; i < len(s.opts.CallbackRetry) {
		j.nextCallback = now.Add(s.opts.CallbackRetry[i])
	} else if n := len(s.opts.CallbackRetry); n > 0 {
		j.nextCallback = now.Add(s.opts.CallbackRetry[n-1] * 2)
	}
}

func (s *Server) post(target, ticket, processed string) (int, string) {
	var body []byte
	var ctype string
	if s.opts.Callback == CallbackJSON {
		body, _ = json.Marshal(map[string]string{"imageTicket": ticket, "ProcessedImageURL": processed})
		ctype = "application/json"
	} else {
		body = []byte(url.Values{"imageTicket": {ticket}, "ProcessedImageURL": {processed}}.Encode())
		ctype = "application/x-www-form-urlencoded"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, ""
}
