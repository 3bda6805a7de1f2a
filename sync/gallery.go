package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"rtbshopify/models"
	"rtbshopify/shopify/admin"
)

// Gallery steps of the write-back and revert: each looks at what is
// already there before it changes anything.

// ensureFile returns the id of a file with a deterministic name, creating
// it from source() only when it does not exist yet. fileCreate refuses a
// name already taken (RAISE_ERROR), and the file of that name is then
// found. With lookFirst the name is looked up before, so nothing is
// uploaded for a file that is already there: for a source that costs
// something (an upload) when the file may exist (an earlier attempt got
// that far), not for a URL Shopify already serves.
func (w *writer) ensureFile(ctx context.Context, name, alt string, lookFirst bool, source func() (string, error)) (string, error) {
	if lookFirst {
		if f, err := w.c.FindFile(ctx, name); errors.Is(err, admin.ErrFilePending) {
			// An earlier attempt's file may still be processing: look again
			// later rather than make a second one.
			return "", fmt.Errorf("%w: %w", errNotReadyYet, err)
		} else if err != nil {
			return "", err
		} else if f != nil {
			return f.ID, nil
		}
	}
	src, err := source()
	if err != nil {
		return "", err
	}
	id, err := w.c.CreateFile(ctx, name, src, alt)
	if errors.Is(err, admin.ErrFileExists) {
		f, ferr := w.c.FindFile(ctx, name)
		if errors.Is(ferr, admin.ErrFilePending) {
			return "", fmt.Errorf("%w: %w", errNotReadyYet, ferr)
		}
		if ferr != nil || f == nil {
			return "", fmt.Errorf("file %s exists but cannot be found: %v", name, ferr)
		}
		return f.ID, nil
	}
	return id, err
}

// ensureMedia returns the processed image as a READY media of the
// product, with alt as its alt text, and whether it attached it now. It is
// created as a file with a name unique to the job (fileCreate refuses a
// second one), then attached: a retry, or another worker after a crash,
// finds it by name instead of adding a copy. A file Shopify failed to
// process (or that is gone from Files) is forgotten and made again, as the
// kept copy of an original is, so a failed file never blocks the job.
func (w *writer) ensureMedia(ctx context.Context, product *admin.Product, alt string) (string, bool, error) {
	j := w.l.job
	for try := 0; ; try++ {
		if j.ResultMediaID == "" && j.ReviewFileID != "" && j.ReviewDecidedAt != nil {
			// Approved: the file held for review is the processed image.
			if err := w.l.update(ctx, map[string]any{"result_media_id": j.ReviewFileID}, "the image held for review goes on the product"); err != nil {
				return "", false, err
			}
		}
		var created time.Time
		if j.ResultMediaID == "" {
			created = time.Now()
			if err := w.uploadResult(ctx, alt, ""); err != nil {
				return "", false, err
			}
		}
		id := j.ResultMediaID
		if m, _ := findMedia(product, id); m != nil && m.Status == "READY" {
			return id, false, nil
		}
		// Shopify attaches only READY files to products, and a media found
		// attached after a crash may still be processing.
		url, err := w.waitImage(ctx, id, created)
		if err == nil {
			w.resultURL = url
		}
		if errors.Is(err, errMediaFailed) || errors.Is(err, admin.ErrNotFound) {
			if ferr := w.forgetResult(ctx, err); ferr != nil {
				return "", false, ferr
			}
			if try > 0 {
				// Shopify may fail to fetch a source for a while: try again later.
				return "", false, fmt.Errorf("%w: %w", errNotReadyYet, err)
			}
			continue
		}
		if err != nil {
			return "", false, err
		}
		if m, _ := findMedia(product, id); m != nil {
			return id, false, nil
		}
		// The alt text goes with the attach, in the same call: the file may
		// have been made in an earlier attempt, before the merchant changed it.
		if err := w.c.AttachFile(ctx, id, j.ProductID, &alt); err != nil {
			return "", false, err
		}
		return id, true, nil
	}
}

// uploadResult makes the processed image (w.up) a file in Files, with a
// name unique to the job and alt as its alt text, and records it on the
// job (why, when given, goes in the job's events as the upload starts).
// The first upload of a write-back has nothing to look up: it says so on
// the job before it starts, and any later attempt, which may find a file
// an earlier one made, looks first.
func (w *writer) uploadResult(ctx context.Context, alt, why string) error {
	j := w.l.job
	name := processedName(j, w.up.ext)
	lookFirst, err := w.startUpload(ctx, why)
	if err != nil {
		return err
	}
	id, err := w.ensureFile(ctx, name, alt, lookFirst, func() (string, error) {
		return w.c.StageUpload(ctx, name, w.up.mime, w.up.data)
	})
	if err != nil {
		return err
	}
	return w.l.update(ctx, map[string]any{"result_media_id": id}, "processed image uploaded to Files")
}

// startUpload marks a write-back's first upload on the job (why in its
// events) before anything is uploaded, and reports whether the name must
// be looked up first: an earlier attempt may have made the file.
func (w *writer) startUpload(ctx context.Context, why string) (lookFirst bool, err error) {
	if !notStarted(w.l.job) {
		return true, nil
	}
	return false, w.l.update(ctx, map[string]any{"step": stepUploading}, why)
}

// notStarted reports whether nothing of the job's write-back has been
// done yet: its step is one of notStartedSteps (it may have waited for its
// product's other images).
func notStarted(j *models.ImageJob) bool { return slices.Contains(notStartedSteps, j.Step) }

var notStartedSteps = []string{"", stepGathering}

// forgetResult deletes the processed file the job made and recorded, which
// Shopify failed to process (cause), and clears the record, so the next
// try makes the file again instead of finding the failed one. Only the
// app's own file is deleted: never the original or its kept copy.
func (w *writer) forgetResult(ctx context.Context, cause error) error {
	j := w.l.job
	id := j.ResultMediaID
	if id == "" || id == j.MediaID || id == j.OriginalFileID {
		return cause
	}
	msg := "the processed image is no longer in Files; it is made again"
	if errors.Is(cause, errMediaFailed) {
		if err := w.c.DeleteFiles(ctx, id); err != nil {
			return err
		}
		msg = "Shopify failed to process the processed image; it was deleted and is made again"
	}
	fields := map[string]any{"result_media_id": ""}
	if id == j.ReviewFileID {
		fields["review_file_id"] = ""
	}
	if err := w.l.update(ctx, fields, msg); err != nil {
		return err
	}
	if id == j.ReviewFileID {
		j.ReviewFileID = ""
	}
	return nil
}

// dropHeld deletes the file an approved image was held in for review once
// its bytes are the original's in place: the copy is no longer needed, and
// would be left in Files as an orphan. Only the app's own held file is
// deleted, and not when the merchant put it on this product by hand.
func (w *writer) dropHeld(ctx context.Context, product *admin.Product) error {
	j := w.l.job
	id := j.ReviewFileID
	if id == "" || id == j.MediaID || id == j.OriginalFileID {
		return nil
	}
	if m, _ := findMedia(product, id); m != nil {
		return nil
	}
	if err := w.c.DeleteFiles(ctx, id); err != nil {
		if admin.IsRetryable(err) {
			return err
		}
		// The product is done; a copy left in Files is not worth failing it.
		w.p.log.Warn("delete the image held for review", "job", j.ID, "err", err)
		return nil
	}
	if err := w.l.update(ctx, map[string]any{"review_file_id": ""}, "the approved image is in place; its held copy was deleted from Files"); err != nil {
		return err
	}
	j.ReviewFileID = ""
	return nil
}

// jobGallery reads what a write-back needs of the job's product: the order
// of its media, with the details of only the job's own (the original, the
// processed image, the file held for review). The whole product (every
// media's image, every variant's media) would cost points for each of its
// media and variants on every image of it. Add mode puts the delivered
// bytes on the product as they are, so it never needs the original's file
// name or URL: it reads the alt texts and statuses only. More names other
// media whose details are read too.
func jobGallery(ctx context.Context, c *admin.Client, j *models.ImageJob, more ...string) (*admin.Product, error) {
	ids := distinctIDs(append([]string{j.MediaID, j.ResultMediaID, j.ReviewFileID}, more...))
	if j.WriteMode == ModeAdd {
		return c.GalleryOrder(ctx, j.ProductID, ids...)
	}
	return c.Gallery(ctx, j.ProductID, ids...)
}

// jobMedia reads what an in-place write-back needs of the job's product:
// the original and the file held for review, if they are on it, with their
// details, and more media named. Unlike jobGallery it does not read the
// gallery's order, so its cost does not grow with the product's size.
func jobMedia(ctx context.Context, c *admin.Client, j *models.ImageJob, more ...string) (*admin.Product, error) {
	ids := distinctIDs(append([]string{j.MediaID, j.ReviewFileID}, more...))
	return c.ProductMediaByID(ctx, j.ProductID, ids...)
}

// distinctIDs is ids without the empty ones and repeats, in order.
func distinctIDs(ids []string) []string {
	var out []string
	for _, id := range ids {
		if id != "" && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

var errMediaFailed = errors.New("shopify could not process the uploaded image")

func (w *writer) waitReady(ctx context.Context, id string) error {
	return w.waitNew(ctx, id, time.Time{})
}

// waitNew is waitReady for a media given bytes at since (created, or
// replaced), which Shopify never has READY at once: its first look comes
// when the shop's media are likely done (waitReady when since is zero).
func (w *writer) waitNew(ctx context.Context, id string, since time.Time) error {
	st, err := w.c.WaitNewMediaReady(ctx, w.p.o.MediaWait, since, id)
	return readiness(id, st[id], err)
}

// waitImage is waitNew that also returns the image's URL once READY.
func (w *writer) waitImage(ctx context.Context, id string, since time.Time) (string, error) {
	st, err := w.c.WaitNewImagesReady(ctx, w.p.o.MediaWait, since, id)
	return st[id].URL, readiness(id, st[id].Status, err)
}

// readiness is what a wait for a media that ended in status (with err)
// means for the write-back.
func readiness(id, status string, err error) error {
	if errors.Is(err, admin.ErrWaitTimeout) {
		// Still processing at Shopify: not a failure yet. The job backs off
		// and looks again, and fails clearly once its attempts are used up.
		return fmt.Errorf("media %s (%s): %w: %w", id, status, errNotReadyYet, err)
	}
	if err != nil {
		return err
	}
	if status != "READY" {
		return fmt.Errorf("%w (media %s is %s)", errMediaFailed, id, status)
	}
	return nil
}

// moveTo puts media id at position pos (0-based) unless it is there.
func (w *writer) moveTo(ctx context.Context, product *admin.Product, id string, pos int) error {
	if m, _ := findMedia(product, id); m != nil && m.Position == pos {
		return nil
	}
	if pos >= len(product.Media) {
		pos = len(product.Media) - 1
	}
	return w.reorder(ctx, product.ID, []admin.Move{{ID: id, NewPosition: pos}})
}

// reorder makes the moves and waits for Shopify's reorder job, noted on
// the product's lock meanwhile: the moves are positions in the gallery as
// it is, so a worker that takes the lock over (this one's lease looked run
// out) waits for them to apply before it reads the gallery and plans its
// own.
func (w *writer) reorder(ctx context.Context, productID string, moves []admin.Move) error {
	job, err := w.c.StartReorderMedia(ctx, productID, moves)
	if err != nil || job == "" {
		return err
	}
	if err := w.p.notePending(ctx, w.l, job); err != nil {
		return err
	}
	w.l.pendingJob = job
	if err := w.c.WaitJob(ctx, job); err != nil {
		return fmt.Errorf("reorder media of %s: %w", productID, err)
	}
	w.l.pendingJob = ""
	return nil
}

// awaitPending waits for a reorder the product lock's last holder left on
// its way, before the gallery is read. A job Shopify no longer knows is
// done.
func (p *Pipeline) awaitPending(ctx context.Context, l *lease, c *admin.Client) error {
	if l.pendingJob == "" {
		return nil
	}
	if err := c.WaitJob(ctx, l.pendingJob); err != nil && !errors.Is(err, admin.ErrNotFound) {
		return fmt.Errorf("wait for the product's earlier reorder: %w", err)
	}
	l.pendingJob = ""
	return nil
}

// variantsOn lists the variants linked to a media now.
func variantsOn(product *admin.Product, mediaID string) []string {
	var out []string
	for _, v := range product.Variants {
		if slices.Contains(v.MediaIDs, mediaID) {
			out = append(out, v.ID)
		}
	}
	return out
}

// relink moves the listed variants' image from one media to another, in
// one call to unlink and one to link. A variant holds one media, so the
// old link goes first. A variant already on the new media is left alone,
// one with no media (an earlier attempt unlinked it) is linked, and one
// the merchant linked to some other image meanwhile keeps that image.
func (w *writer) relink(ctx context.Context, product *admin.Product, variants []string, from, to string) error {
	return moveVariants(ctx, w.c, product, func(p *admin.Product, detach, attach *[]admin.VariantMedia) {
		relinkPlan(p, variants, from, to, map[string]bool{}, detach, attach)
	})
}

// moveVariants makes the links plan asks for, in one call to unlink and
// one to link. A call the client sent again after its answer was lost
// finds its work done, and Shopify refuses it (the media is not on the
// variant any more, the variant has its media already): the variants'
// links are then read again and what is left is planned from them, once,
// so a lost answer never leaves a variant without its image.
func moveVariants(ctx context.Context, c *admin.Client, product *admin.Product, plan func(p *admin.Product, detach, attach *[]admin.VariantMedia)) error {
	for try := 0; ; try++ {
		var detach, attach []admin.VariantMedia
		plan(product, &detach, &attach)
		err := c.DetachVariantMedia(ctx, product.ID, detach)
		if err == nil {
			err = c.AppendVariantMedia(ctx, product.ID, attach)
		}
		if err == nil || try > 0 || !admin.HasCode(err, "MEDIA_IS_NOT_ATTACHED_TO_VARIANT") && !admin.HasCode(err, "PRODUCT_VARIANT_ALREADY_HAS_MEDIA") {
			return err
		}
		variants, rerr := c.ProductVariants(ctx, product.ID)
		if rerr != nil {
			return errors.Join(err, rerr)
		}
		fresh := *product
		fresh.Variants = variants
		product = &fresh
	}
}

// relinkPlan adds to detach and attach the links that move variants from
// one media to another, as relink makes them; seen holds the variants
// planned already (Shopify refuses a variant named twice in a call).
func relinkPlan(product *admin.Product, variants []string, from, to string, seen map[string]bool, detach, attach *[]admin.VariantMedia) {
	current := map[string][]string{}
	for _, v := range product.Variants {
		current[v.ID] = v.MediaIDs
	}
	for _, v := range variants {
		media, ok := current[v]
		if !ok || slices.Contains(media, to) || seen[v] {
			continue // deleted meanwhile, done, or listed twice
		}
		seen[v] = true
		switch {
		case slices.Contains(media, from):
			*detach = append(*detach, admin.VariantMedia{VariantID: v, MediaID: from})
			*attach = append(*attach, admin.VariantMedia{VariantID: v, MediaID: to})
		case len(media) == 0:
			*attach = append(*attach, admin.VariantMedia{VariantID: v, MediaID: to})
		}
	}
}

// withMedia is the product with m appended to its gallery, as attaching a
// file does.
func withMedia(p *admin.Product, m admin.Media) *admin.Product {
	out := *p
	m.Position = len(p.Media)
	out.Media = append(slices.Clone(p.Media), m)
	return &out
}

// withoutMedia is the product with a media detached: the gallery closes
// up and the variants lose their link to it, as Shopify does.
func withoutMedia(p *admin.Product, id string) *admin.Product {
	out := *p
	out.Media = nil
	for _, m := range p.Media {
		if m.ID != id {
			m.Position = len(out.Media)
			out.Media = append(out.Media, m)
		}
	}
	out.Variants = make([]admin.Variant, len(p.Variants))
	for i, v := range p.Variants {
		v.MediaIDs = slices.DeleteFunc(slices.Clone(v.MediaIDs), func(x string) bool { return x == id })
		out.Variants[i] = v
	}
	return &out
}
