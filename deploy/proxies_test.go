// The proxies between the replicas and everything they talk to: the load
// balancer at APP_URL and each replica's own way to the fakes.

package deploy

import (
	"bytes"
	"io"
	"net/http"
	"regexp"
	"strings"
)

// toStore forwards a replica's Shopify requests to the fake store as they
// are (the Host header names the shop), holding one mutation when armed.
func (c *cluster) toStore(nd *node) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method == http.MethodPost && bytes.Contains(body, []byte("mutation")) && c.holdNext.CompareAndSwap(true, false) {
			op := "mutation"
			if m := mutationName.FindSubmatch(body); m != nil {
				op = "mutation " + string(m[1])
			}
			c.hold(w, r, heldCall{node: nd, op: op})
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, c.store.URL()+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		req.Host = r.Host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
}

// toRTB forwards a replica's Remove The Background requests; when armed,
// the next submission reaches the service (it is accepted and will be
// delivered) but its answer never reaches the replica.
func (c *cluster) toRTB(nd *node) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, c.rtb.URL()+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Image/") && c.holdSubmit.CompareAndSwap(true, false) {
			c.hold(w, r, heldCall{node: nd, op: "submission (accepted by Remove The Background, answer withheld)"})
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(answer)
	})
}

// hold hands the held call to the test and answers it only once the test
// releases its replica or the replica gives up. Every wait ends with the
// test's cleanup (which releases every replica), so a held request never
// keeps the server's Close waiting.
func (c *cluster) hold(w http.ResponseWriter, r *http.Request, call heldCall) {
	select {
	case c.held <- call:
	case <-call.node.release:
	case <-r.Context().Done():
	}
	select {
	case <-call.node.release:
	case <-r.Context().Done():
	}
	http.Error(w, "held", http.StatusServiceUnavailable)
}

var mutationName = regexp.MustCompile(`mutation\s+(\w+)`)

func (nd *node) releaseHeld() {
	select {
	case <-nd.release:
	default:
		close(nd.release)
	}
}

// forward is the load balancer: round-robin over the live replicas, and
// on a refused connection the next one (as a health-checked balancer does).
func (c *cluster) forward(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	live := c.live()
	start := int(c.rr.Add(1))
	for i := range live {
		nd := live[(start+i)%len(live)]
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, nd.url+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		defer resp.Body.Close()
		if strings.HasPrefix(r.URL.Path, "/rtb/callback/") && resp.StatusCode < 300 {
			nd.callbacks.Add(1)
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		return
	}
	http.Error(w, "no replica answers", http.StatusBadGateway)
}
