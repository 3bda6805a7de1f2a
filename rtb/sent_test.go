package rtb

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestSubmitCancelledBeforeAByteLeftIsKnownNotSent: a submission cancelled
// while its connection was still being set up (here: a dial that waits,
// as a slow network or a shutdown does) never reached the service, so it
// is not "maybe submitted" and may be sent again without paying twice.
func TestSubmitCancelledBeforeAByteLeftIsKnownNotSent(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the request reached the service")
	}))
	t.Cleanup(srv.Close)
	dialing := make(chan struct{})
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		close(dialing)
		<-ctx.Done()
		return nil, ctx.Err()
	}}}
	c, err := NewClient(srv.URL+"/REST.svc", "", hc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-dialing; cancel() }()
	_, err = c.SubmitImage(ctx, testCred, SubmitRequest{ImageURL: "http://x.example/a.jpg"})
	if err == nil || MaybeSubmitted(err) {
		t.Fatalf("err = %v: want an error that says nothing was sent", err)
	}
}

// TestSubmitCancelledAfterItLeftMayHaveArrived: once the request was
// written, a cancellation cannot tell whether the service accepted it.
func TestSubmitCancelledAfterItLeftMayHaveArrived(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		close(arrived)
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-arrived; cancel() }()
	_, err := c.SubmitImage(ctx, testCred, SubmitRequest{ImageURL: "http://x.example/a.jpg"})
	if err == nil || !MaybeSubmitted(err) {
		t.Fatalf("err = %v: want maybe submitted", err)
	}
}
