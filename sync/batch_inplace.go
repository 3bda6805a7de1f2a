package sync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"rtbshopify/shopify/admin"
)

// Swapping a product's images in place together. A swap needs no gallery,
// but each image pays a kept copy of its original (a fileCreate), the swap
// (a fileUpdate), and the looks at the original, at the copy and at the
// new bytes. A fresh swap takes along its product's other images that are
// back: one read of their originals, one fileCreate, one fileUpdate and
// one wait for each step serve up to batchMax of them; each image still
// pays its staged upload. Each job keeps its own checkpoints (its kept
// copy, its swap), so a batch cut short anywhere is resumed job by job by
// the ordinary write-back.

// inPlaceFits reports whether the lead (w) can lead a swap of several
// images, with what it uploads: its original is on the product and READY
// (Shopify takes new bytes only then), and its image fits it.
func (w *writer) inPlaceFits(product *admin.Product, planned *upload) (upload, bool) {
	orig, _ := findMedia(product, w.l.job.MediaID)
	if orig == nil || orig.Status != "READY" || planned == nil {
		return upload{}, false
	}
	up := w.planFor(orig, planned)
	return up, up.inPlace
}

// replaceInPlaceTogether swaps in place the lead's image (w, with w.up
// planned) and those of the jobs taken along, on the product as read with
// all their originals. It settles every job taken along itself and
// returns the lead's outcome.
func (w *writer) replaceInPlaceTogether(ctx context.Context, product *admin.Product, along []*lease) error {
	b := w.newBatch(along)
	defer b.end(ctx)
	fail := b.failer(ctx)

	// Each processed image is staged, then one fileCreate keeps a copy of
	// each original.
	staged := b.stageAll(ctx, product, true, inPlaceFile(product))
	kept := createTogether(ctx, w.c, staged, fail, keptCopy)
	if len(kept) == 0 || ctx.Err() != nil {
		return b.leadErr
	}
	// Shopify's copies must be READY before the bytes they keep are
	// replaced.
	ids := make([]string, len(kept))
	for i, m := range kept {
		ids[i] = m.w.l.job.OriginalFileID
	}
	st, werr := w.c.WaitNewMediaReady(ctx, w.p.o.MediaWait, kept[0].created, ids...)
	var ready []*member
	for _, m := range kept {
		id := m.w.l.job.OriginalFileID
		if err := readiness(id, st[id], werr); errors.Is(err, errMediaFailed) || errors.Is(err, admin.ErrNotFound) {
			// Its own write-back deletes the failed copy and makes it again.
			b.onItsOwn(m)
		} else if err != nil {
			fail(m, err, "")
		} else {
			ready = append(ready, m)
		}
	}
	swapped, replaced := swapTogether(ctx, w.c, ready, fail)
	if len(swapped) == 0 {
		return b.leadErr
	}
	ids = make([]string, len(swapped))
	for i, m := range swapped {
		ids[i] = m.w.l.job.MediaID
	}
	images, werr := w.c.WaitNewImagesReady(ctx, w.p.o.MediaWait, replaced, ids...)
	for _, m := range swapped {
		id := m.w.l.job.MediaID
		if err := readiness(id, images[id].Status, werr); errors.Is(err, admin.ErrNotFound) {
			// Deleted meanwhile: its own write-back finds it gone.
			b.onItsOwn(m)
			continue
		} else if err != nil {
			// New bytes Shopify could not process are undone: the kept
			// copy's go back.
			fail(m, err, "")
			continue
		}
		b.finish(ctx, m, id, images[id].URL, "processed image in place of the original")
	}
	return b.leadErr
}

// keptCopy is the copy of the member's original kept in Files, for
// revert.
func keptCopy(m *member) aFile {
	j := m.w.l.job
	return aFile{originalName(j, extOf(m.orig.Filename)), m.orig.URL, "original_file_id", "original kept in Files"}
}

// inPlaceFile expects the member's image to be its original's kind of
// file, as a swap in place needs it.
func inPlaceFile(product *admin.Product) func(*member) (admin.StagedFile, bool) {
	return func(m *member) (admin.StagedFile, bool) {
		j := m.w.l.job
		orig, _ := findMedia(product, j.MediaID)
		if orig == nil || orig.Status != "READY" {
			return admin.StagedFile{}, false
		}
		name, mime := originalFile(j, orig)
		f := originalFormat(name, mime)
		return admin.StagedFile{Name: processedName(j, extOf(name)), Mime: mimeOfFormat(f)}, f != ""
	}
}

// swapTogether replaces the members' bytes in one fileUpdate and records
// each swap; it returns the members swapped and when. When that call
// fails (a file Shopify refuses, one the merchant is uploading to, say, or
// an answer lost) each is swapped on its own: one the call swapped already
// is processing its new bytes then, refused as not READY, and its job
// looks again later, as it would after a swap of its own whose answer was
// lost.
func swapTogether(ctx context.Context, c *admin.Client, ms []*member, fail func(*member, error, string)) ([]*member, time.Time) {
	if len(ms) == 0 {
		return nil, time.Time{}
	}
	files := make([]admin.FileSource, len(ms))
	for i, m := range ms {
		files[i] = admin.FileSource{ID: m.w.l.job.MediaID, Source: m.src}
	}
	replaced := time.Now()
	batchErr := c.ReplaceFileImages(ctx, files)
	var swapped []*member
	for _, m := range ms {
		j := m.w.l.job
		if batchErr != nil {
			if ctx.Err() != nil {
				fail(m, batchErr, "")
				continue
			}
			if err := c.ReplaceFileImage(ctx, j.MediaID, m.src); admin.HasCode(err, "NON_READY_STATE") {
				fail(m, fmt.Errorf("%w: %w", errNotReadyYet, err), "")
				continue
			} else if err != nil {
				fail(m, err, "")
				continue
			}
		}
		if err := m.w.l.update(ctx, map[string]any{"step": stepReplaced, "result_media_id": j.MediaID}, "image replaced in place"); err != nil {
			fail(m, err, "")
			continue
		}
		m.attached = true
		swapped = append(swapped, m)
	}
	return swapped, replaced
}
