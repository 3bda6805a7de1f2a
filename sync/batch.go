package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/shopify/admin"
)

// Writing back a product's images together. Adding a processed image next
// to its original needs the gallery's order, which Shopify gives at a
// point a media, and an attach and a reorder; a new media in the
// original's place also needs the variants' links, a relink and the
// original's detach. One image at a time, a product of n images pays for
// its gallery n times. A fresh write-back in those paths therefore takes
// along its product's other images that wait for their first write-back
// (usually there are some: a product's images go to Remove The Background
// together): each is uploaded in turn, and one gallery read, one attach,
// one reorder, one variants read, one relink and one detach serve them
// all.
//
// Each job keeps its own checkpoints, as a write-back of one image does
// (the file it made, the variants it moves), so a batch cut short anywhere
// is resumed job by job by the ordinary write-back; a job that fails in a
// batch is undone and retried as it would be on its own.

// batchMax caps the jobs written back together: each is downloaded and
// uploaded in turn while all their leases are held.
const batchMax = 25

// batchable reports whether a write-back may take other images along: it
// is its job's first (nothing of it is on Shopify yet), the job was not
// taken along itself (it runs on its own after a batch), and no image
// waits for the merchant's review, which each job decides on its own.
func batchable(l *lease, s Settings) bool {
	j := l.job
	return !l.taken && s.Publish != PublishReview && notStarted(j) && j.ResultMediaID == "" && j.ReviewFileID == ""
}

// gatherUntil reports whether a first write-back should wait until until
// for its product's other images, still on their way (submitted, or not
// yet): it was delivered less than Gather ago, and has not waited yet.
// The last of them to come back takes the others along.
func (p *Pipeline) gatherUntil(ctx context.Context, l *lease, s Settings) (time.Time, bool, error) {
	j := l.job
	if p.o.Gather < 0 || j.Step != "" || !batchable(l, s) || j.DeliveredAt == nil || j.State != models.JobWritingBack {
		return time.Time{}, false, nil
	}
	now := p.now()
	until := j.DeliveredAt.Add(p.o.Gather)
	if !now.Before(until) {
		return time.Time{}, false, nil
	}
	// A clock that jumped back never makes it wait longer than Gather.
	if until.After(now.Add(p.o.Gather)) {
		until = now.Add(p.o.Gather)
	}
	var ids []uint64
	err := p.o.DB.WithContext(ctx).Model(&models.ImageJob{}).
		Where("shop_id = ? AND product_id = ? AND state IN ? AND delivered_at IS NULL AND id <> ?", j.ShopID, j.ProductID, onTheirWay, j.ID).
		Limit(1).Pluck("id", &ids).Error
	if err != nil {
		return time.Time{}, false, fmt.Errorf("look for the product's images on their way: %w", err)
	}
	return until, len(ids) > 0, nil
}

// onTheirWay are the states of an image on its way to Remove The
// Background or back.
var onTheirWay = []string{models.JobQueued, models.JobSubmitting, models.JobAwaitingRTB, models.JobRetrying}

// takeAlong leases, under the lead's token, up to batchMax-1 other jobs of
// its product in the same write mode that wait for their first write-back
// and no worker holds. The heartbeat renews them with the lead's lease.
func (p *Pipeline) takeAlong(ctx context.Context, l *lease) ([]*lease, error) {
	j := l.job
	now := p.now()
	db := p.o.DB.WithContext(ctx)
	fresh := func(q *gorm.DB) *gorm.DB { return freshOfProduct(q, j, now) }
	var ids []uint64
	if err := fresh(db).Order("id").Limit(batchMax-1).Pluck("id", &ids).Error; err != nil {
		return nil, fmt.Errorf("find the product's other images: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	until := ms(now.Add(p.o.Lease))
	res := fresh(db).Where("id IN ?", ids).Updates(map[string]any{"lease_owner": l.token, "lease_until": until, "run_at": until, "queue_key": nil})
	if res.Error != nil {
		return nil, fmt.Errorf("take the product's other images along: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return nil, nil
	}
	var got []models.ImageJob
	if err := db.Where("id IN ? AND lease_owner = ?", ids, l.token).Order("id").Find(&got).Error; err != nil {
		// Their leases run out and they come back by themselves.
		return nil, fmt.Errorf("read the images taken along: %w", err)
	}
	along := make([]uint64, len(got))
	leases := make([]*lease, len(got))
	for i := range got {
		along[i] = got[i].ID
		leases[i] = &lease{p: p, job: &got[i], token: l.token, taken: true}
	}
	l.along.Store(&along)
	return leases, nil
}

// freshOfProduct selects the other jobs of j's product, in its write mode,
// that wait for their first write-back and no worker holds, through the
// product's index.
func freshOfProduct(db *gorm.DB, j *models.ImageJob, now time.Time) *gorm.DB {
	return db.Model(&models.ImageJob{}).
		Where("shop_id = ? AND product_id = ? AND state = ? AND id <> ?", j.ShopID, j.ProductID, models.JobWritingBack, j.ID).
		Where("write_mode = ? AND step IN ? AND result_media_id = '' AND review_file_id = '' AND attempts = 0 AND final_image_url <> '' AND run_at IS NOT NULL", j.WriteMode, notStartedSteps).
		Where("(lease_owner IS NULL OR lease_until < ?)", ms(now))
}

// handBack lets jobs taken along go, due at once, untouched.
func (p *Pipeline) handBack(ctx context.Context, along []*lease) {
	for _, l := range along {
		if err := l.release(context.WithoutCancel(ctx), map[string]any{}, ptr(ms(p.now())), ""); err != nil {
			p.log.Warn("hand back a job taken along", "job", l.job.ID, "err", err)
		}
	}
}

// member is one job of a write-back of several images.
type member struct {
	w        *writer
	orig     *admin.Media
	name     string              // its processed image's file name
	src      string              // its staged upload
	created  time.Time           // when its file was made
	target   *admin.StagedTarget // where its image is likely staged
	url      string              // its image's URL, once READY
	attached bool                // it may be on the product
	alone    bool                // written back on its own after the batch
	out      bool                // settled: done, or failed and retried later
}

// togetherFits reports whether the lead (w) can lead a batch, with what
// it uploads: its original is on the product, its image does not fit in
// place (which needs no gallery), and the gallery has room for every
// processed image at once.
func (w *writer) togetherFits(product *admin.Product, along int, planned *upload) (upload, bool) {
	j := w.l.job
	orig, _ := findMedia(product, j.MediaID)
	if orig == nil || len(product.Media)+1+along > maxProductMedia {
		return upload{}, false
	}
	if j.WriteMode == ModeAdd {
		return delivered(w.img, "added after the original"), true
	}
	up := w.planFor(orig, planned)
	return up, !up.inPlace
}

// planFor is what is uploaded in replace mode for the original as it is
// now: planned, when it was made for the same file, or the image fitted
// to it.
func (w *writer) planFor(orig *admin.Media, planned *upload) upload {
	j := w.l.job
	name, mime := originalFile(j, orig)
	if planned != nil && name == j.OriginalFilename && originalFormat(name, mime) == originalFormat(name, "") {
		return *planned
	}
	return fitToOriginal(w.img, name, mime)
}

// errOnItsOwn: the lead's image is to be written back on its own, as the
// ordinary write-back resumes it.
var errOnItsOwn = errors.New("written back on its own")

// batch is a write-back of several images: the lead's (w, with w.up
// planned) and those of the jobs taken along.
type batch struct {
	w       *writer
	all     []*member // the lead first
	leadErr error     // the lead's outcome
}

func (w *writer) newBatch(along []*lease) *batch {
	b := &batch{w: w, all: []*member{{w: w}}}
	for _, l := range along {
		b.all = append(b.all, &member{w: &writer{p: w.p, l: l, c: w.c}})
	}
	return b
}

func (b *batch) lead() *member { return b.all[0] }

// fail takes a member out of the batch with err: the lead's goes back to
// its write-back, another's is undone if need be and retried.
func (b *batch) fail(ctx context.Context, m *member, err error, msg string) {
	m.out = true
	if m == b.lead() {
		b.leadErr = err
		return
	}
	if ferr := m.w.settleWith(ctx, err, msg, m.attached); ferr != nil && ctx.Err() == nil {
		b.w.p.log.Warn("record a failed write-back", "job", m.w.l.job.ID, "err", ferr)
	}
}

// failer is fail for ctx, for the steps shared by every kind of batch.
func (b *batch) failer(ctx context.Context) func(*member, error, string) {
	return func(m *member, err error, msg string) { b.fail(ctx, m, err, msg) }
}

func (b *batch) failAll(ctx context.Context, ms []*member, err error) {
	for _, m := range ms {
		b.fail(ctx, m, err, "")
	}
}

// onItsOwn leaves the member to its own write-back, after the batch.
func (b *batch) onItsOwn(m *member) {
	m.alone = true
	if m == b.lead() {
		b.leadErr = errOnItsOwn
	}
}

// stageAll uploads each member's processed image to staged storage in
// turn (one image's bytes in memory at once; inPlace as stage) and returns
// the members staged. Their targets are asked for first, in one call, for the
// files expect says their images will likely be; a member whose image is
// another file after all asks for its own.
func (b *batch) stageAll(ctx context.Context, product *admin.Product, inPlace bool, expect func(*member) (admin.StagedFile, bool)) []*member {
	var files []admin.StagedFile
	var who []*member
	for _, m := range b.all {
		if f, ok := expect(m); ok {
			files, who = append(files, f), append(who, m)
		}
	}
	if len(files) > 1 {
		ts, err := b.w.c.StageTargets(ctx, files)
		if err != nil {
			b.w.p.log.Warn("stage uploads one by one", "job", b.w.l.job.ID, "err", err)
		}
		for i := range ts {
			who[i].target = ts[i]
		}
	}
	var staged []*member
	for _, m := range b.all {
		if msg, err := m.stage(ctx, product, m == b.lead(), inPlace); err != nil {
			b.fail(ctx, m, err, msg)
		} else if m.src != "" {
			staged = append(staged, m)
		}
	}
	return staged
}

// finish records the member's write-back done, with its result.
func (b *batch) finish(ctx context.Context, m *member, resultID, url, msg string) {
	m.out = true
	if err := m.w.finish(ctx, resultID, url, msg); err != nil {
		if m == b.lead() {
			b.leadErr = err
		} else if ctx.Err() == nil {
			b.w.p.log.Warn("record a finished write-back", "job", m.w.l.job.ID, "err", err)
		}
	}
}

// end settles the jobs taken along that the batch did not: each left to
// its own write-back has it now, the others are handed back untouched.
func (b *batch) end(ctx context.Context) {
	p := b.w.p
	for _, m := range b.all[1:] {
		switch {
		case m.out:
		case m.alone && ctx.Err() == nil:
			if err := p.writeBack(ctx, m.w.l); err != nil {
				p.log.Warn("write back on its own", "job", m.w.l.job.ID, "err", err)
			}
		default:
			p.handBack(ctx, []*lease{m.w.l})
		}
	}
}

// writeBackTogether writes back the lead's image (w, with w.up planned)
// and those of the jobs taken along, on the product as read with all their
// originals, as new media or added ones. It settles every job taken along
// itself and returns the lead's outcome.
func (w *writer) writeBackTogether(ctx context.Context, product *admin.Product, along []*lease) error {
	p := w.p
	add := w.l.job.WriteMode == ModeAdd
	b := w.newBatch(along)
	defer b.end(ctx)
	fail := b.failer(ctx)

	// Each processed image is staged, then one fileCreate makes them all
	// files.
	staged := b.stageAll(ctx, product, false, b.asLead)
	live := createTogether(ctx, w.c, staged, fail, processedFile)
	if len(live) == 0 || ctx.Err() != nil {
		return b.leadErr
	}
	// Shopify attaches only READY files.
	ids := make([]string, len(live))
	since := live[0].created
	for i, m := range live {
		ids[i] = m.w.l.job.ResultMediaID
		if m.created.Before(since) {
			since = m.created
		}
	}
	st, werr := w.c.WaitNewImagesReady(ctx, p.o.MediaWait, since, ids...)
	ready := live[:0]
	for _, m := range live {
		id := m.w.l.job.ResultMediaID
		if err := readiness(id, st[id].Status, werr); errors.Is(err, errMediaFailed) || errors.Is(err, admin.ErrNotFound) {
			// Its own write-back deletes the failed (or lost) file and makes
			// it again, in the same attempt.
			b.onItsOwn(m)
			continue
		} else if err != nil {
			fail(m, err, "")
			continue
		}
		m.url = st[id].URL
		ready = append(ready, m)
	}
	if len(ready) == 0 {
		return b.leadErr
	}
	files := make([]admin.FileAlt, len(ready))
	next := map[string]string{} // original → processed image
	for i, m := range ready {
		m.attached = true
		j := m.w.l.job
		files[i] = admin.FileAlt{ID: j.ResultMediaID, Alt: m.orig.Alt}
		next[j.MediaID] = j.ResultMediaID
	}
	// The alt texts go with the attach, in the same call.
	if err := w.c.AttachFiles(ctx, product.ID, files); err != nil {
		b.failAll(ctx, ready, err)
		return b.leadErr
	}
	for _, f := range files {
		product = withMedia(product, admin.Media{ID: f.ID, Alt: f.Alt, Status: "READY", MediaContentType: "IMAGE"})
	}
	if !add {
		// Only this path moves variant links: they are read here, once.
		variants, err := w.c.ProductVariants(ctx, product.ID)
		if err != nil {
			b.failAll(ctx, ready, err)
			return b.leadErr
		}
		withVariants := *product
		withVariants.Variants = variants
		product = &withVariants
	}
	if err := w.reorder(ctx, product.ID, togetherMoves(product, next, add)); err != nil {
		b.failAll(ctx, ready, err)
		return b.leadErr
	}
	msg := "processed image added after the original"
	if !add {
		msg = "processed image replaced the original"
		if ready = relinkTogether(ctx, product, ready, fail); len(ready) == 0 {
			return b.leadErr
		}
	}
	for _, m := range ready {
		b.finish(ctx, m, m.w.l.job.ResultMediaID, m.url, msg)
	}
	return b.leadErr
}

// stage uploads the member's processed image to Shopify's staged
// storage: the lead's as it was planned; another's downloaded, and fitted
// to its original in replace mode. inPlace is the batch's path: swapped in
// place, or added or put in as new media. A member whose original is gone
// (or, to be swapped, takes other bytes now) is left to its own
// write-back; one whose image belongs to the other path is handed back,
// to go with the product's images of that path. A failure comes with the
// merchant's message, if any.
func (m *member) stage(ctx context.Context, product *admin.Product, isLead, inPlace bool) (string, error) {
	w, p := m.w, m.w.p
	j := w.l.job
	if m.orig, _ = findMedia(product, j.MediaID); m.orig == nil || inPlace && m.orig.Status != "READY" {
		m.alone = true
		return "", nil
	}
	if !isLead {
		img, msg, err := p.processedImage(ctx, w.c, j)
		if err != nil {
			return msg, err
		}
		w.img = img
		defer func() { img.Release(); w.img = nil }()
		if j.WriteMode == ModeAdd {
			w.up = delivered(img, "added after the original")
		} else if w.up = w.planFor(m.orig, nil); w.up.inPlace != inPlace {
			return "", nil
		}
	}
	// Members are first write-backs: nothing to look up (createTogether
	// looks each name up should the files' creation fail). A swap records
	// its plan only, as a swap alone does; an upload of a new file is
	// marked first.
	if inPlace {
		if err := w.l.update(ctx, map[string]any{}, w.up.why+" (swapped together with the product's other images)"); err != nil {
			return "", err
		}
	} else if _, err := w.startUpload(ctx, w.up.why+" (written back together with the product's other images)"); err != nil {
		return "", err
	}
	return "", m.upload(ctx)
}

// upload stages the member's image (w.up): to the target asked for it,
// when that is the file it is.
func (m *member) upload(ctx context.Context) error {
	w := m.w
	m.name = processedName(w.l.job, w.up.ext)
	var err error
	if t := m.target; t != nil && t.File == (admin.StagedFile{Name: m.name, Mime: w.up.mime}) {
		m.src, err = w.c.Upload(ctx, t, w.up.data)
	} else {
		m.src, err = w.c.StageUpload(ctx, m.name, w.up.mime, w.up.data)
	}
	w.up.data = nil
	return err
}

// asLead expects each member's image to be the same kind of file as the
// lead's (w.up): a product's images come back from Remove The Background
// alike.
func (b *batch) asLead(m *member) (admin.StagedFile, bool) {
	return admin.StagedFile{Name: processedName(m.w.l.job, b.w.up.ext), Mime: b.w.up.mime}, true
}

// aFile is a file a member of a batch makes: its exact name, its source,
// and the job's column and event that record it.
type aFile struct{ name, src, column, msg string }

// processedFile is the member's processed image, staged.
func processedFile(m *member) aFile {
	return aFile{m.name, m.src, "result_media_id", "processed image uploaded to Files"}
}

// createTogether makes the members' files (file says which) in one
// fileCreate and records each on its job; it returns the members that
// have theirs. When that call fails, each name is looked up (the call may
// have made them all before its answer was lost) and made on its own.
func createTogether(ctx context.Context, c *admin.Client, ms []*member, fail func(*member, error, string), file func(*member) aFile) []*member {
	if len(ms) == 0 {
		return nil
	}
	files := make([]admin.NewFile, len(ms))
	for i, m := range ms {
		f := file(m)
		files[i] = admin.NewFile{Name: f.name, Source: f.src, Alt: m.orig.Alt}
	}
	ids, batchErr := c.CreateFiles(ctx, files)
	created := time.Now()
	var live []*member
	for i, m := range ms {
		f := file(m)
		id, err := "", error(nil)
		if batchErr == nil {
			id = ids[i]
		} else if id, err = m.w.ensureFile(ctx, f.name, m.orig.Alt, true, func() (string, error) { return f.src, nil }); err != nil {
			fail(m, err, "")
			continue
		}
		if err := m.w.l.update(ctx, map[string]any{f.column: id}, f.msg); err != nil {
			fail(m, err, "")
			continue
		}
		m.created = created
		live = append(live, m)
	}
	return live
}

// relinkTogether finishes the replace path for the members on the product:
// each records the variants it moves, then one call unlinks them from the
// originals and one links them to the processed images, and one detach
// takes the originals off (they stay in Files, for revert). It returns the
// members still in.
func relinkTogether(ctx context.Context, product *admin.Product, ms []*member, fail func(*member, error, string)) []*member {
	var in []*member
	for _, m := range ms {
		j := m.w.l.job
		vs := variantsOn(product, j.MediaID)
		if err := m.w.l.update(ctx, map[string]any{"step": stepRelinking, "variant_ids": variantJSON(vs)}, ""); err != nil {
			fail(m, err, "")
			continue
		}
		in = append(in, m)
	}
	if len(in) == 0 {
		return nil
	}
	c := in[0].w.c
	origs := make([]string, len(in))
	for i, m := range in {
		origs[i] = m.w.l.job.MediaID
	}
	err := moveVariants(ctx, c, product, func(p *admin.Product, detach, attach *[]admin.VariantMedia) {
		seen := map[string]bool{}
		for _, m := range in {
			j := m.w.l.job
			relinkPlan(p, variantList(j.VariantIDs), j.MediaID, j.ResultMediaID, seen, detach, attach)
		}
	})
	if err == nil {
		err = c.DetachFiles(ctx, product.ID, origs...)
	}
	if err != nil {
		for _, m := range in {
			fail(m, err, "")
		}
		return nil
	}
	done := in[:0]
	for _, m := range in {
		if err := m.w.l.update(ctx, map[string]any{"original_file_id": m.w.l.job.MediaID}, "original detached, kept in Files"); err != nil {
			fail(m, err, "")
			continue
		}
		done = append(done, m)
	}
	return done
}

// togetherMoves are the moves, in one reorder, that put each processed
// image (attached last) next to its original, next maps one to the other:
// after it in add mode; otherwise on either side, where it takes the
// original's place once that is detached (before it, unless it follows it
// already). Every other media keeps its order. Shopify applies the moves
// in turn, each to a position in the gallery as the moves before it left
// it.
func togetherMoves(product *admin.Product, next map[string]string, after bool) []admin.Move {
	cur := make([]string, len(product.Media))
	isNew := map[string]bool{}
	for _, n := range next {
		isNew[n] = true
	}
	for i, m := range product.Media {
		cur[i] = m.ID
	}
	var want []string
	for i, id := range cur {
		if isNew[id] {
			continue
		}
		n, ok := next[id]
		switch {
		case !ok:
			want = append(want, id)
		case after, i+1 < len(cur) && cur[i+1] == n:
			want = append(want, id, n)
		default:
			want = append(want, n, id)
		}
	}
	var moves []admin.Move
	for i, id := range want {
		if cur[i] == id {
			continue
		}
		cur = slices.Insert(slices.DeleteFunc(cur, func(x string) bool { return x == id }), i, id)
		moves = append(moves, admin.Move{ID: id, NewPosition: i})
	}
	return moves
}
