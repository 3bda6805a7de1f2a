package sync

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"time"

	"rtbshopify/models"
	"rtbshopify/rtb"
	"rtbshopify/shopify/admin"
)

// Write-back checkpoints recorded in ImageJob.Step, so a retried or
// taken-over job resumes after the last step that certainly happened.
const (
	stepReplaced = "replaced" // in-place bytes swapped
	// stepUploading: the processed image's file may have been made, and
	// not recorded yet (the attempt stopped): a name to look up first.
	stepUploading = "uploading"
	// stepGathering: a first write-back waited once for its product's
	// other images; nothing of it is on Shopify yet.
	stepGathering = "gathering"
	// stepRelinking: VariantIDs now lists the variants the write-back moves
	// to the processed image, read from the product at write-back time.
	stepRelinking = "relinking"
	// stepRoomMade: the original was detached first because the product
	// held Shopify's maximum of media; OriginalPosition and VariantIDs say
	// where it was and which variants it had.
	stepRoomMade = "room_made"
	// StepRevertRequested marks a done job whose original the merchant asked back.
	StepRevertRequested = "revert_requested"
)

// extOf is a file name's extension exactly as Shopify has it (".jpeg",
// ".JPG", none at all): Shopify compares extensions case included, so the
// kept copy and the replacing bytes must carry this very spelling.
func extOf(name string) string { return path.Ext(name) }

// writeBack puts the delivered image on the product. Every step checks
// what is already there before it creates anything, so a retry or another
// worker taking over never adds a second copy.
func (p *Pipeline) writeBack(ctx context.Context, l *lease) error {
	j := l.job
	shop, settings, ok, err := p.activeShop(ctx, l)
	if !ok {
		return err
	}
	if until, wait, err := p.gatherUntil(ctx, l, settings); err != nil || wait {
		if err != nil {
			return p.fail(ctx, l, err, "Could not read the product's other images.")
		}
		return l.release(ctx, map[string]any{"step": stepGathering}, ptr(ms(until)),
			"waits a moment for the product's other images on their way, to write them back together")
	}
	if j.State != models.JobWritingBack {
		if err := l.update(ctx, map[string]any{"state": models.JobWritingBack}, ""); err != nil {
			return err
		}
	}
	c := p.productClient(shop.Domain, l)
	if err := p.awaitPending(ctx, l, c); err != nil {
		return p.fail(ctx, l, err, "Could not read the product from Shopify.")
	}
	var img *rtb.Image
	// An approved image swapped in place already needs no bytes: only their
	// processing is awaited, and the held copy they came from may be gone.
	if j.Step != stepReplaced || j.ReviewDecidedAt == nil {
		var msg string
		if img, msg, err = p.processedImage(ctx, c, j); err != nil {
			return p.fail(ctx, l, err, msg)
		}
	}
	defer img.Release()
	// In review mode the image waits in Files for the merchant's decision
	// before anything on the product changes.
	if held, err := p.holdForReview(ctx, l, settings, c, img); held || err != nil {
		return err
	}
	// A swap in place needs only the job's own media; adding a media needs
	// the gallery's order too, to put it where the original is. A fresh
	// write-back is planned from the original as the job recorded it, and
	// planned again should the original be another file now.
	ordered := true
	var planned *upload
	switch {
	case j.WriteMode == ModeAdd, j.ResultMediaID != "" && j.ResultMediaID != j.MediaID:
	case j.Step == stepReplaced, j.ResultMediaID == j.MediaID:
		ordered = false
	default:
		up := fitToOriginal(img, j.OriginalFilename, "")
		planned = &up
		ordered = !up.inPlace
	}
	// A first write-back takes its product's other images along when they
	// are ready too.
	var along []*lease
	if (ordered || planned != nil) && batchable(l, settings) {
		if along, err = p.takeAlong(ctx, l); err != nil {
			p.log.Warn("write back alone", "job", j.ID, "err", err)
		}
	}
	more := make([]string, len(along))
	for i, a := range along {
		more[i] = a.job.MediaID
	}
	var product *admin.Product
	if ordered {
		product, err = jobGallery(ctx, c, j, more...)
	} else {
		product, err = jobMedia(ctx, c, j, more...)
	}
	if done, err := p.productRead(ctx, l, err); done {
		p.handBack(ctx, along)
		return err
	}
	wb := &writer{p: p, l: l, c: c, img: img}
	if len(along) > 0 {
		var up upload
		var ok bool
		together, read := wb.writeBackTogether, jobGallery
		if ordered {
			up, ok = wb.togetherFits(product, len(along), planned)
		} else {
			together, read = wb.replaceInPlaceTogether, jobMedia
			up, ok = wb.inPlaceFits(product, planned)
		}
		if !ok {
			p.handBack(ctx, along)
		} else {
			wb.up = up
			if err := together(ctx, product, along); !errors.Is(err, errOnItsOwn) {
				return wb.settle(ctx, err)
			}
			// Shopify failed to process its file, or a copy of its
			// original: on its own, from the product as it is now.
			product, err = read(ctx, c, j)
			if done, err := p.productRead(ctx, l, err); done {
				return err
			}
		}
	}
	orig, _ := findMedia(product, j.MediaID)
	switch {
	case j.WriteMode == ModeAdd:
		wb.up = delivered(img, "added after the original")
		err = wb.add(ctx, product)
	case j.Step == stepReplaced:
		// The bytes are swapped already: only their processing is awaited.
		err = wb.replaceInPlace(ctx, product)
	case j.ResultMediaID == j.MediaID:
		// An in-place swap that did not finish: decide the same way again.
		name, mime := originalFile(j, orig)
		wb.up = fitToOriginal(img, name, mime)
		err = wb.replaceInPlace(ctx, product)
	case j.ResultMediaID != "":
		// An earlier attempt took the new-media path: finish it.
		wb.up = delivered(img, "")
		err = wb.replaceWithNew(ctx, product)
	default:
		wb.up = wb.planFor(orig, planned)
		if orig != nil {
			if err := l.update(ctx, map[string]any{}, wb.up.why); err != nil {
				return err
			}
		}
		if wb.up.inPlace {
			err = wb.replaceInPlace(ctx, product)
			break
		}
		if planned != nil && planned.inPlace {
			// Planned in place, but the original is another file now.
			product, err = jobGallery(ctx, c, j)
			if done, err := p.productRead(ctx, l, err); done {
				return err
			}
		}
		err = wb.replaceWithNew(ctx, product)
	}
	return wb.settle(ctx, err)
}

// settle ends a write-back that failed with err (nil: it did not).
func (w *writer) settle(ctx context.Context, err error) error {
	return w.settleWith(ctx, err, "", true)
}

// settleWith is settle with the merchant's message (""; the failure's
// own) and whether anything of the write-back may be on the product to
// undo.
func (w *writer) settleWith(ctx context.Context, err error, msg string, undo bool) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, errGone) {
		return w.gone(ctx)
	}
	// Between attempts the product shows either the original or the
	// finished result, never a half-done mix (two copies, a variant on
	// the wrong image). A worker stopping or losing its lease leaves the
	// step to the next one, which resumes it: the job is no longer its to
	// undo.
	if undo && ctx.Err() == nil && !errors.Is(err, ErrLeaseLost) {
		w.rollback(context.WithoutCancel(ctx), err)
	}
	if msg == "" {
		msg = writeBackFailure(err)
	}
	return w.p.fail(ctx, w.l, err, msg)
}

// productRead ends the write-back (done) when reading its product failed:
// the product was deleted, or Shopify could not be read.
func (p *Pipeline) productRead(ctx context.Context, l *lease, err error) (bool, error) {
	if errors.Is(err, admin.ErrNotFound) {
		return true, l.release(ctx, map[string]any{"state": models.JobFailed, "error": "The product was deleted before the processed image arrived."}, nil, "product gone")
	}
	if err != nil {
		return true, p.fail(ctx, l, err, "Could not read the product from Shopify.")
	}
	return false, nil
}

// processedImage downloads the processed image, through the download
// guard, with a message for the merchant when it cannot. Once the image is
// held in Files for the merchant's review it comes from there: an approval
// may come days after the delivery, when Remove The Background's link has
// gone. That link is the fallback when the held file is gone from Files.
func (p *Pipeline) processedImage(ctx context.Context, c *admin.Client, j *models.ImageJob) (*rtb.Image, string, error) {
	if j.ReviewFileID != "" {
		st, err := c.FileStatus(ctx, j.ReviewFileID)
		if err != nil {
			return nil, "Could not read the image held for review from Shopify.", err
		}
		if f := st[j.ReviewFileID]; f.Status == "READY" && f.URL != "" {
			img, err := p.o.Fetcher.Fetch(ctx, f.URL)
			if err == nil {
				return img, "", nil
			}
			if rtb.IsRetryable(err) {
				return nil, "Could not download the image held for review from Shopify.", err
			}
			p.log.Warn("image held for review refused; taking it from Remove The Background", "job", j.ID, "err", err)
		}
	}
	img, err := p.o.Fetcher.Fetch(ctx, j.FinalImageURL)
	if err != nil {
		var de *rtb.DownloadError
		if errors.As(err, &de) && !rtb.IsRetryable(err) {
			if j.ReviewFileID != "" {
				return nil, fmt.Sprintf("The image held for review is no longer in Files, and Remove The Background no longer serves it (%s). Nothing was changed on the product.", de.Rule), err
			}
			return nil, fmt.Sprintf("The processed image from Remove The Background was refused (%s). Nothing was changed on the product.", de.Rule), err
		}
		return nil, "Could not download the processed image from Remove The Background.", err
	}
	return img, "", nil
}

// originalFile is the original's file name and MIME type as Shopify has
// them now (the job's record when the media is gone or not READY).
func originalFile(j *models.ImageJob, orig *admin.Media) (string, string) {
	if orig != nil && orig.Filename != "" {
		return orig.Filename, orig.MimeType
	}
	return j.OriginalFilename, ""
}

func writeBackFailure(err error) string {
	switch {
	case errors.Is(err, admin.ErrWaitTimeout):
		return "Shopify has not finished processing the image."
	case errors.Is(err, errCopyFailed):
		return "Shopify could not keep a copy of the original image, so it was left as it is."
	case errors.Is(err, errGalleryFull):
		return fmt.Sprintf("The product already has %d images, Shopify's maximum, so the processed image cannot be added. Remove an image, or switch the write mode to replace, then Retry.", maxProductMedia)
	case errors.Is(err, errMediaFailed):
		return "Shopify could not process the processed image; the original is still on the product."
	}
	return "Could not write the processed image back to Shopify."
}

// gone ends a job whose original the merchant removed from the product
// while the image was away: the product is left as the merchant made it
// (nothing is put back), and the paid-for processed image is kept in Files.
func (w *writer) gone(ctx context.Context) error {
	j := w.l.job
	msg := "The original image was removed from the product before the processed one arrived; the product was left as it is."
	fields := map[string]any{"state": models.JobFailed}
	switch {
	case j.ReviewFileID != "":
		// The image held for review is that file already.
		msg += " The processed image stays in Files."
		fields["result_media_id"] = j.ReviewFileID
	case w.img == nil:
		// Its bytes were on the removed media: nothing is left to keep.
	default:
		if w.up.data == nil {
			fn, mime := originalFile(j, nil)
			w.up = fitToOriginal(w.img, fn, mime)
		}
		name := processedName(j, w.up.ext)
		id, err := w.ensureFile(ctx, name, j.OriginalAlt, true, func() (string, error) {
			return w.c.StageUpload(ctx, name, w.up.mime, w.up.data)
		})
		if err != nil {
			w.p.log.Warn("keep processed image of a removed original", "job", j.ID, "err", err)
		} else {
			msg += " The processed image is in Files as " + name + "."
			fields["result_media_id"] = id
		}
	}
	fields["error"] = msg
	return w.l.release(ctx, fields, nil, "original gone")
}

var errGone = errors.New("original media no longer on the product")

type writer struct {
	p   *Pipeline
	l   *lease
	c   *admin.Client
	img *rtb.Image
	up  upload // what is uploaded: the delivered image, or it fitted to the original
	// resultURL is the processed image's URL once a wait saw it READY.
	resultURL string
}

// replaceInPlace swaps the media's bytes, keeping its id, position, alt and
// variant links. The original's bytes are first kept as a file in the
// shop's Files, for revert.
func (w *writer) replaceInPlace(ctx context.Context, product *admin.Product) error {
	j := w.l.job
	orig, _ := findMedia(product, j.MediaID)
	if orig == nil {
		// Removed by the merchant, before or after the swap: never put back.
		return errGone
	}
	var replaced time.Time // zero after a crash: the swap may be done already
	if j.Step != stepReplaced {
		if orig.Status != "READY" {
			// Shopify takes new bytes only for a READY file, and shows a
			// processing one's URL only once it is READY again. It is this
			// job's own swap from an attempt cut short before it was
			// recorded (its copy is kept already: the same bytes again
			// change nothing), or the merchant's new upload: look again later.
			return fmt.Errorf("%w: the original media is %s", errNotReadyYet, orig.Status)
		}
		// The processed image is staged while Shopify copies the original.
		var src string
		stage := func() (err error) {
			src, err = w.c.StageUpload(ctx, processedName(j, w.up.ext), w.up.mime, w.up.data)
			return err
		}
		if err := w.keepOriginal(ctx, orig, stage); err != nil {
			return err
		}
		replaced = time.Now()
		if err := w.c.ReplaceFileImage(ctx, j.MediaID, src); admin.HasCode(err, "NON_READY_STATE") {
			// Processing again since it was read: another worker's swap, when
			// a clock jumped and this job's lease looked run out, or the
			// merchant's upload. Look again later.
			return fmt.Errorf("%w: %w", errNotReadyYet, err)
		} else if err != nil {
			return err
		}
		if err := w.l.update(ctx, map[string]any{"step": stepReplaced, "result_media_id": j.MediaID}, "image replaced in place"); err != nil {
			return err
		}
	}
	url, err := w.waitImage(ctx, j.MediaID, replaced)
	if err != nil {
		return err
	}
	if err := w.dropHeld(ctx, product); err != nil {
		return err
	}
	return w.finish(ctx, j.MediaID, url, "processed image in place of the original")
}

var errCopyFailed = errors.New("shopify could not process the kept copy of the original")

// keepOriginal makes sure a READY copy of the original's bytes is in Files
// before they are replaced. A copy Shopify failed to process is deleted
// (it is the app's own file, and it holds the name) and made again from
// the original as it is now, so a failed copy never blocks the job.
// meanwhile runs once, while Shopify makes the copy, before it is awaited.
func (w *writer) keepOriginal(ctx context.Context, orig *admin.Media, meanwhile func() error) error {
	j := w.l.job
	for try := 0; ; try++ {
		var created time.Time // zero when an earlier attempt made the copy
		if j.OriginalFileID == "" {
			created = time.Now()
			id, err := w.ensureFile(ctx, originalName(j, extOf(orig.Filename)), orig.Alt, false,
				func() (string, error) { return orig.URL, nil })
			if err != nil {
				return err
			}
			if err := w.l.update(ctx, map[string]any{"original_file_id": id}, "original kept in Files"); err != nil {
				return err
			}
		}
		if meanwhile != nil {
			if err := meanwhile(); err != nil {
				return err
			}
			meanwhile = nil
		}
		err := w.waitNew(ctx, j.OriginalFileID, created)
		if !errors.Is(err, errMediaFailed) {
			return err
		}
		if try > 0 {
			// Shopify may fail to fetch a source for a while: try again later.
			return fmt.Errorf("%w (%w): %w", errCopyFailed, errNotReadyYet, err)
		}
		if err := w.c.DeleteFiles(ctx, j.OriginalFileID); err != nil {
			return err
		}
		if err := w.l.update(ctx, map[string]any{"original_file_id": ""}, "Shopify failed to process the kept copy of the original; it was deleted and is made again"); err != nil {
			return err
		}
	}
}

// replaceWithNew adds the processed image as a new media at the original's
// position with its alt text and variant links, then detaches the original
// (it stays in the shop's Files, for revert). Position, alt and links are
// the original's as they are now, not as they were at submission: the
// merchant may have changed them while the image was away.
func (w *writer) replaceWithNew(ctx context.Context, product *admin.Product) error {
	j := w.l.job
	// Only this path moves variant links: they are read here, not for
	// every write-back.
	variants, err := w.c.ProductVariants(ctx, j.ProductID)
	if err != nil {
		return err
	}
	withVariants := *product
	withVariants.Variants = variants
	product, err = w.makeRoom(ctx, &withVariants)
	if err != nil {
		return err
	}
	newID, product, orig, err := w.placeNew(ctx, product)
	if err != nil {
		return err
	}
	if j.Step == stepRoomMade {
		if err := w.moveTo(ctx, product, newID, j.OriginalPosition); err != nil {
			return err
		}
		if err := w.relink(ctx, product, variantList(j.VariantIDs), j.MediaID, newID); err != nil {
			return err
		}
	} else if orig != nil {
		// Right before or right after the original, it takes the
		// original's place once that is detached: it needs no move. An
		// earlier attempt may have moved it before the original already:
		// moved again by its position as read, it would land one place too
		// far should that attempt's worker, still running after its lease
		// looked run out, detach the original meanwhile.
		if !besideEachOther(product, orig.Position, newID) {
			if err := w.moveTo(ctx, product, newID, orig.Position); err != nil {
				return err
			}
		}
		variants := variantsOn(product, j.MediaID)
		if j.Step == stepRelinking {
			// An earlier attempt may have moved some already.
			for _, v := range variantList(j.VariantIDs) {
				if !slices.Contains(variants, v) {
					variants = append(variants, v)
				}
			}
		}
		if j.Step != stepRelinking || variantJSON(variants) != j.VariantIDs {
			if err := w.l.update(ctx, map[string]any{"step": stepRelinking, "variant_ids": variantJSON(variants)}, ""); err != nil {
				return err
			}
		}
		if err := w.relink(ctx, product, variants, j.MediaID, newID); err != nil {
			return err
		}
		if err := w.c.DetachFile(ctx, j.MediaID, j.ProductID); err != nil {
			return err
		}
	}
	if err := w.l.update(ctx, map[string]any{"original_file_id": j.MediaID}, "original detached, kept in Files"); err != nil {
		return err
	}
	return w.finish(ctx, newID, w.resultURL, "processed image replaced the original")
}

// besideEachOther reports whether media id is right before or right after
// position pos of the product's gallery.
func besideEachOther(product *admin.Product, pos int, id string) bool {
	for _, at := range []int{pos - 1, pos + 1} {
		if at >= 0 && at < len(product.Media) && product.Media[at].ID == id {
			return true
		}
	}
	return false
}

// makeRoom detaches the original first when the product holds Shopify's
// maximum of media, so the processed image can be attached at all. Where it
// was and which variants it had are recorded before, so the next steps
// (or the rollback) put the processed image (or the original) back there.
func (w *writer) makeRoom(ctx context.Context, product *admin.Product) (*admin.Product, error) {
	j := w.l.job
	orig, _ := findMedia(product, j.MediaID)
	if orig == nil || len(product.Media) < maxProductMedia || j.Step == stepRoomMade {
		return product, nil
	}
	if j.ResultMediaID != "" {
		if m, _ := findMedia(product, j.ResultMediaID); m != nil {
			return product, nil // attached already: nothing to make room for
		}
	}
	variants := variantsOn(product, j.MediaID)
	if err := w.l.update(ctx, map[string]any{"step": stepRoomMade, "original_position": orig.Position, "variant_ids": variantJSON(variants)},
		fmt.Sprintf("the product holds Shopify's maximum of %d media: the original is detached first, to make room", maxProductMedia)); err != nil {
		return nil, err
	}
	if err := w.c.DetachFile(ctx, j.MediaID, j.ProductID); err != nil {
		return nil, err
	}
	return withoutMedia(product, j.MediaID), nil
}

// maxProductMedia is Shopify's limit of media per product.
const maxProductMedia = 250

var errGalleryFull = errors.New("the product holds Shopify's maximum of media")

// add puts the processed image right after the original.
func (w *writer) add(ctx context.Context, product *admin.Product) error {
	j := w.l.job
	if len(product.Media) >= maxProductMedia {
		if m, _ := findMedia(product, j.ResultMediaID); j.ResultMediaID == "" || m == nil {
			return fmt.Errorf("%w (%d)", errGalleryFull, maxProductMedia)
		}
	}
	newID, product, orig, err := w.placeNew(ctx, product)
	if err != nil {
		return err
	}
	if orig != nil {
		if err := w.moveTo(ctx, product, newID, orig.Position+1); err != nil {
			return err
		}
	}
	return w.finish(ctx, newID, w.resultURL, "processed image added after the original")
}

// placeNew puts the processed image on the product as a new media (with
// the original's current alt text) and returns its id with the product as
// it is now and the original in it (nil once detached). An original the
// merchant removed is errGone: the processed image is not put in its place.
func (w *writer) placeNew(ctx context.Context, product *admin.Product) (string, *admin.Product, *admin.Media, error) {
	j := w.l.job
	orig, _ := findMedia(product, j.MediaID)
	if orig == nil && j.Step != stepRoomMade {
		// Only a finished replace detaches the original, and only once the
		// processed image is on the product; otherwise the merchant removed it.
		placed := j.ResultMediaID != "" && j.WriteMode == ModeReplace
		if placed {
			m, _ := findMedia(product, j.ResultMediaID)
			placed = m != nil
		}
		if !placed {
			return "", nil, nil, errGone
		}
	}
	alt := j.OriginalAlt
	if orig != nil {
		alt = orig.Alt
	}
	newID, attached, err := w.ensureMedia(ctx, product, alt)
	if err != nil {
		return "", nil, nil, err
	}
	if attached {
		// Attaching appends the media to the gallery: no need to read it
		// again (the product lock keeps the app's other workers off it).
		product = withMedia(product, admin.Media{ID: newID, Alt: alt, Status: "READY", MediaContentType: "IMAGE"})
	}
	orig, _ = findMedia(product, j.MediaID)
	return newID, product, orig, nil
}

// finish ends the job done with resultID on the product; processedURL,
// the result's image URL, is read when not known.
func (w *writer) finish(ctx context.Context, resultID, processedURL, msg string) error {
	j := w.l.job
	if processedURL == "" {
		if st, err := w.c.FileStatus(ctx, resultID); err == nil {
			processedURL = st[resultID].URL
		}
	}
	return w.l.release(ctx, map[string]any{"state": models.JobDone, "result_media_id": resultID, "processed_url": processedURL,
		"step": "", "error": ""}, nil, msg+" (job "+strconv.FormatUint(j.ID, 10)+")")
}
