package admin_test

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"strings"
	"sync"
	"testing"
	"time"

	"rtbshopify/shopify/admin"
	"rtbshopify/shopify/shopifytest"
)

const shop = "demo-shop.myshopify.com"

type fixture struct {
	store  *shopifytest.Store
	client *admin.Client
	token  string
}

func setup(t *testing.T, opts shopifytest.Options) *fixture {
	t.Helper()
	opts.APIKey, opts.APISecret = "key123", "secret456"
	s := shopifytest.New(opts)
	t.Cleanup(s.Close)
	// Every request any test sent, variables included, used nothing deprecated and was answered
	// by the version the client pins (not a fall-forward).
	t.Cleanup(func() {
		for _, r := range s.Requests() {
			if len(r.Deprecated) > 0 {
				t.Errorf("%s used what %s marks deprecated: %v", r.Operation, r.Version, r.Deprecated)
			}
			if r.Version != "" && r.Version != admin.DefaultAPIVersion {
				t.Errorf("%s was answered by %s, want %s", r.Operation, r.Version, admin.DefaultAPIVersion)
			}
		}
	})
	s.AddShop(shop)
	tok := s.IssueAccessToken(shop, 0)
	return &fixture{store: s, token: tok, client: newClient(s, tok, nil)}
}

func newClient(s *shopifytest.Store, tok string, b *admin.Budget) *admin.Client {
	return admin.New(admin.Options{
		Shop: shop, Token: admin.StaticToken(tok), BaseURL: s.URL(), Budget: b,
		BaseDelay: 5 * time.Millisecond, PollInterval: 5 * time.Millisecond,
	})
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func (f *fixture) product(t *testing.T) *shopifytest.ProductRecord {
	t.Helper()
	rec, err := f.store.CreateProduct(shop, shopifytest.NewProduct{
		Title: "Red shirt", ProductType: "Shirts", Vendor: "ACME", Tags: []string{"summer"},
		Images: []shopifytest.NewImage{
			{Filename: "front.png", Data: shopifytest.SamplePNG(8, 8, color.RGBA{255, 0, 0, 255}), Alt: "front"},
			{Filename: "back.jpg", Data: shopifytest.SampleJPEG(8, 8, color.White), Alt: "back"},
		},
		Variants: []shopifytest.NewVariant{{Title: "S", ImageIndex: 0}, {Title: "M", ImageIndex: -1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.WaitMediaReady(ctx(t), 0, rec.MediaIDs...); err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestProduct(t *testing.T) {
	f := setup(t, shopifytest.Options{})
	rec := f.product(t)
	p, err := f.client.Product(ctx(t), rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.Title != "Red shirt" || p.Vendor != "ACME" || p.ProductType != "Shirts" || p.Status != "ACTIVE" || len(p.Tags) != 1 {
		t.Fatalf("product = %+v", p)
	}
	if len(p.Media) != 2 || p.Media[1].Filename != "back.jpg" || p.Media[1].Position != 1 || p.Media[0].Alt != "front" ||
		p.Media[0].Status != "READY" || p.Media[0].MediaContentType != "IMAGE" || p.Media[0].URL == "" {
		t.Fatalf("media = %+v", p.Media)
	}
	if len(p.Variants) != 2 || len(p.Variants[0].MediaIDs) != 1 || p.Variants[0].MediaIDs[0] != rec.MediaIDs[0] || len(p.Variants[1].MediaIDs) != 0 {
		t.Fatalf("variants = %+v", p.Variants)
	}
	if _, err := f.client.Product(ctx(t), "gid://shopify/Product/424242"); !errors.Is(err, admin.ErrNotFound) {
		t.Fatalf("missing product: err = %v", err)
	}
}

func TestProductsUpdatedSince(t *testing.T) {
	f := setup(t, shopifytest.Options{})
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 60 {
		rec, err := f.store.CreateProduct(shop, shopifytest.NewProduct{Title: "p"})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.store.SetProductUpdated(shop, rec.ID, base.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.ID)
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		list, next, err := f.client.ProductsUpdatedSince(ctx(t), base.Add(4*time.Minute+30*time.Second), cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range list {
			got = append(got, p.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(got) != 55 || got[0] != ids[5] || got[54] != ids[59] {
		t.Fatalf("got %d products, first %v", len(got), got[:1])
	}
}

func TestReplaceFileImageInPlace(t *testing.T) {
	f := setup(t, shopifytest.Options{})
	rec := f.product(t)
	c := ctx(t)
	newBytes := shopifytest.SamplePNG(6, 6, color.RGBA{0, 0, 255, 255})
	src, err := f.client.StageUpload(c, "front-processed.png", "image/png", newBytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.client.ReplaceFileImage(c, rec.MediaIDs[0], src); err != nil {
		t.Fatal(err)
	}
	st, err := f.client.WaitMediaReady(c, 0, rec.MediaIDs[0])
	if err != nil || st[rec.MediaIDs[0]] != "READY" {
		t.Fatalf("status %v err %v", st, err)
	}
	snap := f.store.Product(shop, rec.ID)
	m := snap.Media[0]
	if m.ID != rec.MediaIDs[0] || string(m.Data) != string(newBytes) || m.Alt != "front" || m.Filename != "front.png" {
		t.Fatalf("media after replace = %+v", m)
	}
	if snap.Variants[0].MediaIDs[0] != rec.MediaIDs[0] {
		t.Fatal("variant link lost")
	}
	// Another extension is refused, typed.
	jpg, err := f.client.StageUpload(c, "front.jpg", "image/jpeg", shopifytest.SampleJPEG(4, 4, color.Black))
	if err != nil {
		t.Fatal(err)
	}
	err = f.client.ReplaceFileImage(c, rec.MediaIDs[0], jpg)
	var ue *admin.UserError
	if !errors.As(err, &ue) || ue.Code != "MISMATCHED_FILENAME_AND_ORIGINAL_SOURCE" || admin.IsRetryable(err) {
		t.Fatalf("err = %v", err)
	}
}

func TestCreateAttachDetachFile(t *testing.T) {
	f := setup(t, shopifytest.Options{})
	rec := f.product(t)
	c := ctx(t)
	src, err := f.client.StageUpload(c, "rtb-1-front.png", "image/png", shopifytest.SamplePNG(5, 5, color.White))
	if err != nil {
		t.Fatal(err)
	}
	id, err := f.client.CreateFile(c, "rtb-1-front.png", src, "front")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.CreateFile(c, "rtb-1-front.png", src, "front"); !errors.Is(err, admin.ErrFileExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	// Not READY yet: Shopify refuses to attach.
	if err := f.client.AttachFile(c, id, rec.ID, nil); !admin.HasCode(err, "NON_READY_STATE") {
		t.Fatalf("attach before ready: %v", err)
	}
	if _, err := f.client.WaitMediaReady(c, 0, id); err != nil {
		t.Fatal(err)
	}
	found, err := f.client.FindFile(c, "rtb-1-front.png")
	if err != nil || found == nil || found.ID != id || found.Status != "READY" || found.Alt != "front" {
		t.Fatalf("FindFile = %+v, %v", found, err)
	}
	if none, err := f.client.FindFile(c, "nope.png"); none != nil || err != nil {
		t.Fatalf("FindFile(nope) = %+v, %v", none, err)
	}
	alt := "new alt"
	if err := f.client.AttachFile(c, id, rec.ID, &alt); err != nil {
		t.Fatal(err)
	}
	if err := f.client.DetachFile(c, rec.MediaIDs[0], rec.ID); err != nil {
		t.Fatal(err)
	}
	p, err := f.client.Product(c, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Media) != 2 || p.Media[0].ID != rec.MediaIDs[1] || p.Media[1].ID != id || p.Media[1].Alt != "new alt" {
		t.Fatalf("media = %+v", p.Media)
	}
	if len(p.Variants[0].MediaIDs) != 0 {
		t.Fatal("detached media still linked to a variant")
	}
	files, err := f.client.FileStatus(c, rec.MediaIDs[0], id)
	if err != nil || files[rec.MediaIDs[0]].Status != "READY" || files[id].Filename != "rtb-1-front.png" {
		t.Fatalf("detached file should stay in Files: %+v %v", files, err)
	}
}

func TestAddReorderAndVariantMedia(t *testing.T) {
	f := setup(t, shopifytest.Options{})
	rec := f.product(t)
	c := ctx(t)
	src, err := f.client.StageUpload(c, "extra.png", "image/png", shopifytest.SamplePNG(3, 3, color.Black))
	if err != nil {
		t.Fatal(err)
	}
	mid, err := f.client.CreateFile(c, "extra.png", src, "extra")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.client.AppendVariantMedia(c, rec.ID, []admin.VariantMedia{{rec.VariantIDs[1], mid}}); !admin.HasCode(err, "MEDIA_DOES_NOT_EXIST_ON_PRODUCT") {
		t.Fatalf("append a media not on the product: %v", err)
	}
	if _, err := f.client.WaitMediaReady(c, 0, mid); err != nil {
		t.Fatal(err)
	}
	if err := f.client.AttachFile(c, mid, rec.ID, nil); err != nil {
		t.Fatal(err)
	}
	if err := reorderMedia(c, f.client, rec.ID, []admin.Move{{ID: mid, NewPosition: 0}}); err != nil {
		t.Fatal(err)
	}
	// A variant holds one media: appending to S (which has front) is refused.
	err = f.client.AppendVariantMedia(c, rec.ID, []admin.VariantMedia{{rec.VariantIDs[0], mid}})
	if !admin.HasCode(err, "PRODUCT_VARIANT_ALREADY_HAS_MEDIA") {
		t.Fatalf("append to a variant with media: %v", err)
	}
	if err := f.client.DetachVariantMedia(c, rec.ID, []admin.VariantMedia{{rec.VariantIDs[0], rec.MediaIDs[0]}}); err != nil {
		t.Fatal(err)
	}
	if err := f.client.AppendVariantMedia(c, rec.ID, []admin.VariantMedia{{rec.VariantIDs[0], mid}, {rec.VariantIDs[1], rec.MediaIDs[1]}}); err != nil {
		t.Fatal(err)
	}
	p, err := f.client.Product(c, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	order := []string{p.Media[0].ID, p.Media[1].ID, p.Media[2].ID}
	if order[0] != mid || order[1] != rec.MediaIDs[0] || order[2] != rec.MediaIDs[1] || p.Media[0].Alt != "extra" {
		t.Fatalf("order = %v", order)
	}
	if p.Variants[0].MediaIDs[0] != mid || p.Variants[1].MediaIDs[0] != rec.MediaIDs[1] {
		t.Fatalf("variants = %+v", p.Variants)
	}
	err = reorderMedia(c, f.client, rec.ID, []admin.Move{{ID: "gid://shopify/MediaImage/999999", NewPosition: 0}})
	if !admin.HasCode(err, "MEDIA_DOES_NOT_EXIST") {
		t.Fatalf("reorder unknown media: %v", err)
	}
}

func TestWaitMediaReadyFailed(t *testing.T) {
	f := setup(t, shopifytest.Options{})
	c := ctx(t)
	// Bytes that are not an image: processing fails like at Shopify.
	src, err := f.client.StageUpload(c, "broken.png", "image/png", []byte("not an image"))
	if err != nil {
		t.Fatal(err)
	}
	mid, err := f.client.CreateFile(c, "broken.png", src, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.client.WaitMediaReady(c, 0, mid)
	if err != nil || st[mid] != "FAILED" {
		t.Fatalf("status %v, err %v", st, err)
	}
}

func TestRetriesRecover(t *testing.T) {
	for _, status := range []int{429, 500, 502, 503} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			f := setup(t, shopifytest.Options{RetryAfter: 10 * time.Millisecond})
			rec := f.product(t)
			f.store.FailNext(2, status)
			if _, err := f.client.Product(ctx(t), rec.ID); err != nil {
				t.Fatalf("status %d: %v", status, err)
			}
			st := f.client.Stats()
			if st.Retries != 2 || st.HTTPErrors != 2 {
				t.Fatalf("stats = %+v", st)
			}
		})
	}
}

func TestRetriesGiveUp(t *testing.T) {
	f := setup(t, shopifytest.Options{RetryAfter: 5 * time.Millisecond})
	f.store.FailNext(10, 503)
	_, err := f.client.Product(ctx(t), "gid://shopify/Product/1")
	var he *admin.HTTPError
	if !errors.As(err, &he) || he.Status != 503 || !admin.IsRetryable(err) {
		t.Fatalf("err = %v", err)
	}
	if n := f.client.Stats().Calls; n != 6 {
		t.Fatalf("calls = %d, want 6 attempts", n)
	}
}

// catalogue creates 50 products so that ProductsUpdatedSince (requested 2 + 50×1 = 52 points)
// really costs what it asks for and nothing is refunded.
func (f *fixture) catalogue(t *testing.T) {
	t.Helper()
	for range 50 {
		if _, err := f.store.CreateProduct(shop, shopifytest.NewProduct{Title: "p"}); err != nil {
			t.Fatal(err)
		}
	}
}

func hammer(t *testing.T, clients []*admin.Client, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, _, err := clients[i%len(clients)].ProductsUpdatedSince(ctx(t), time.Time{}, ""); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func throttledCount(s *shopifytest.Store) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Throttled {
			n++
		}
	}
	return n
}

func TestThrottledRetriedWithoutBudgetKnowledge(t *testing.T) {
	f := setup(t, shopifytest.Options{BucketSize: 150, RestoreRate: 2000})
	f.catalogue(t)
	// Clients with private budgets overdraw the shared bucket together; the THROTTLED answers are
	// retried after the bucket's refill time and every call succeeds.
	var clients []*admin.Client
	for range 3 {
		clients = append(clients, newClient(f.store, f.token, nil))
	}
	hammer(t, clients, 15)
	t.Logf("private budgets: %d throttled answers", throttledCount(f.store))
}

func TestBudgetWaitsBeforeThrottling(t *testing.T) {
	f := setup(t, shopifytest.Options{BucketSize: 150, RestoreRate: 2000})
	f.catalogue(t)
	budget := admin.NewBudget()
	var clients []*admin.Client
	for range 6 {
		clients = append(clients, newClient(f.store, f.token, budget))
	}
	// One call teaches the budget the real bucket and the operation's cost.
	if _, _, err := clients[0].ProductsUpdatedSince(ctx(t), time.Time{}, ""); err != nil {
		t.Fatal(err)
	}
	f.store.ResetRequests()
	hammer(t, clients, 30)
	var wait time.Duration
	for _, c := range clients {
		wait += c.Stats().BudgetWait
	}
	throttled := throttledCount(f.store)
	t.Logf("shared budget: %d throttled answers, %s waited in the budget", throttled, wait)
	if throttled > 2 {
		t.Fatalf("%d throttled answers: the shared budget did not pace the callers", throttled)
	}
}

func TestContextCancellation(t *testing.T) {
	f := setup(t, shopifytest.Options{})
	f.store.SetLatency(5 * time.Second)
	c, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := f.client.Product(c, "gid://shopify/Product/1")
	if !errors.Is(err, context.DeadlineExceeded) || admin.IsRetryable(err) {
		t.Fatalf("err = %v", err)
	}
	f.store.SetLatency(0)

	// Cancelled while waiting for budget: nothing is sent.
	b := admin.NewBudget()
	cl := newClient(f.store, f.token, b)
	f.store.FailNext(10, 429) // Retry-After 1 s by default
	c2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, err := cl.Product(c2, "gid://shopify/Product/1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestTokenNeverInErrors(t *testing.T) {
	f := setup(t, shopifytest.Options{})
	secret := "shpat_this_is_a_secret_token"
	cl := newClient(f.store, secret, nil)
	_, err := cl.Product(ctx(t), "gid://shopify/Product/1")
	var he *admin.HTTPError
	if !errors.As(err, &he) || he.Status != 401 {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("token leaked: %v", err)
	}
}

func TestGraphQLErrorTyped(t *testing.T) {
	f := setup(t, shopifytest.Options{})
	_, err := f.client.Product(ctx(t), "not-a-gid")
	var ge *admin.GraphQLError
	if !errors.As(err, &ge) || admin.IsRetryable(err) {
		t.Fatalf("err = %v", err)
	}
}

func TestProductPagesThroughManyMediaAndVariants(t *testing.T) {
	f := setup(t, shopifytest.Options{})
	np := shopifytest.NewProduct{Title: "Big gallery"}
	for i := range 23 {
		np.Images = append(np.Images, shopifytest.NewImage{Filename: fmt.Sprintf("img%02d.png", i), Data: shopifytest.SamplePNG(4, 4, color.White), Alt: fmt.Sprint(i)})
	}
	for i := range 25 {
		np.Variants = append(np.Variants, shopifytest.NewVariant{Title: fmt.Sprint("v", i), ImageIndex: i % 23})
	}
	rec, err := f.store.CreateProduct(shop, np)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.WaitMediaReady(ctx(t), 0, rec.MediaIDs...); err != nil {
		t.Fatal(err)
	}
	p, err := f.client.Product(ctx(t), rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Media) != 23 || len(p.Variants) != 25 {
		t.Fatalf("got %d media and %d variants, want 23 and 25", len(p.Media), len(p.Variants))
	}
	for i, m := range p.Media {
		if m.ID != rec.MediaIDs[i] || m.Position != i || m.Alt != fmt.Sprint(i) {
			t.Fatalf("media %d = %+v, want %s at position %d", i, m, rec.MediaIDs[i], i)
		}
	}
	if v := p.Variants[24]; len(v.MediaIDs) != 1 || v.MediaIDs[0] != rec.MediaIDs[24%23] {
		t.Fatalf("last variant = %+v", v)
	}
}

// A guarded client asks its guard before every mutation and sends nothing
// the guard refuses; reads go through, and the counters are the client's.
func TestAGuardedClientSendsNoMutationItsGuardRefuses(t *testing.T) {
	f := setup(t, shopifytest.Options{})
	rec := f.product(t)
	lost := errors.New("the work is another worker's now")
	var asked int
	refuse := false
	g := f.client.Guarded(func(context.Context) error {
		asked++
		if refuse {
			return lost
		}
		return nil
	})
	if err := reorderMedia(ctx(t), g, rec.ID, []admin.Move{{ID: rec.MediaIDs[1], NewPosition: 0}}); err != nil {
		t.Fatal(err)
	}
	if asked != 1 {
		t.Fatalf("the guard was asked %d times for one mutation and its job's polls, want 1", asked)
	}
	refuse = true
	f.store.ResetRequests()
	err := reorderMedia(ctx(t), g, rec.ID, []admin.Move{{ID: rec.MediaIDs[0], NewPosition: 0}})
	if !errors.Is(err, lost) {
		t.Fatalf("a refused mutation returned %v, want the guard's error", err)
	}
	if _, err := g.Product(ctx(t), rec.ID); err != nil {
		t.Fatalf("a read through the guarded client: %v", err)
	}
	for _, r := range f.store.Requests() {
		if r.Operation == "ProductReorderMedia" {
			t.Fatal("the refused mutation reached the store")
		}
	}
	if got := f.store.Product(shop, rec.ID).Media[0].ID; got != rec.MediaIDs[1] {
		t.Fatalf("first media %s, want %s (moved by the allowed reorder only)", got, rec.MediaIDs[1])
	}
	if f.client.Stats().Calls != g.Stats().Calls {
		t.Fatalf("the guarded client counts %d calls, the client %d: want the same counters", g.Stats().Calls, f.client.Stats().Calls)
	}
}

// reorderMedia moves media and waits for Shopify's reorder job, as the
// write-back does.
func reorderMedia(ctx context.Context, c *admin.Client, productID string, moves []admin.Move) error {
	job, err := c.StartReorderMedia(ctx, productID, moves)
	if err != nil || job == "" {
		return err
	}
	return c.WaitJob(ctx, job)
}
