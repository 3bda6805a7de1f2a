package sync

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"rtbshopify/models"
	"rtbshopify/rtb"
	"rtbshopify/shopify/admin"
)

// Write-back checkpoints recorded in ImageJob.Step, so a retried or
// taken-over job resumes after the last step that certainly happened.
const (
	stepReplaced = "replaced" // in-place bytes swapped
	// StepRevertRequested marks a done job whose original the merchant asked back.
	StepRevertRequested = "revert_requested"
)

func processedName(jobID uint64, ext string) string {
	return processedPrefix + strconv.FormatUint(jobID, 10) + ext
}

func originalName(jobID uint64, ext string) string {
	return "rtbshopify-original-" + strconv.FormatUint(jobID, 10) + ext
}

// extOf is a file name's extension, lower case, with jpeg spelled jpg.
func extOf(name string) string {
	e := strings.ToLower(path.Ext(name))
	if e == ".jpeg" {
		return ".jpg"
	}
	return e
}

// writeBack puts the delivered image on the product. Every step checks
// what is already there before it creates anything, so a retry or another
// worker taking over never adds a second copy.
func (p *Pipeline) writeBack(ctx context.Context, l *lease) error {
	j := l.job
	shop, _, ok, err := p.activeShop(ctx, l)
	if !ok {
		return err
	}
	if j.State != models.JobWritingBack {
		if err := l.update(ctx, map[string]any{"state": models.JobWritingBack}, ""); err != nil {
			return err
		}
	}
	img, err := p.o.Fetcher.Fetch(ctx, j.FinalImageURL)
	if err != nil {
		var de *rtb.DownloadError
		if errors.As(err, &de) && !rtb.IsRetryable(err) {
			return p.fail(ctx, l, err, fmt.Sprintf("The processed image from Remove The Background was refused (%s). Nothing was changed on the product.", de.Rule))
		}
		return p.fail(ctx, l, err, "Could not download the processed image from Remove The Background.")
	}
	c := p.o.Admin(shop.Domain)
	product, err := c.Product(ctx, j.ProductID)
	if errors.Is(err, admin.ErrNotFound) {
		return l.release(ctx, map[string]any{"state": models.JobFailed, "error": "The product was deleted before the processed image arrived."}, nil, "product gone")
	}
	if err != nil {
		return p.fail(ctx, l, err, "Could not read the product from Shopify.")
	}
	wb := &writer{p: p, l: l, c: c, img: img}
	switch {
	case j.WriteMode == ModeAdd:
		err = wb.add(ctx, product)
	case j.ResultMediaID == j.MediaID || j.Step == stepReplaced || extOf(j.OriginalFilename) == img.Ext:
		err = wb.replaceInPlace(ctx, product)
	default:
		err = wb.replaceWithNew(ctx, product)
	}
	if err != nil {
		if errors.Is(err, errGone) {
			return l.release(ctx, map[string]any{"state": models.JobFailed, "error": "The original image was removed from the product before the processed one arrived; nothing was changed."}, nil, "original gone")
		}
		// Between attempts the product shows either the original or the
		// finished result, never a half-done mix (two copies, a variant on
		// the wrong image). A worker stopping or losing its lease leaves the
		// step to the next one, which resumes it.
		if ctx.Err() == nil && !errors.Is(err, ErrLeaseLost) {
			wb.rollback(context.WithoutCancel(ctx), err)
		}
		return p.fail(ctx, l, err, "Could not write the processed image back to Shopify.")
	}
	return nil
}

var errGone = errors.New("original media no longer on the product")

type writer struct {
	p   *Pipeline
	l   *lease
	c   *admin.Client
	img *rtb.Image
}

func mimeOf(ext string) string {
	switch ext {
	case ".png":
		return "image/png"
	case ".gif":
		return "image/gif"
	case ".webp":
		return "image/webp"
	}
	return "image/jpeg"
}

// replaceInPlace swaps the media's bytes, keeping its id, position, alt and
// variant links. The original's bytes are first kept as a file in the
// shop's Files, for revert.
func (w *writer) replaceInPlace(ctx context.Context, product *admin.Product) error {
	j := w.l.job
	if j.Step != stepReplaced {
		orig, _ := findMedia(product, j.MediaID)
		if orig == nil {
			return errGone
		}
		if j.OriginalFileID == "" {
			id, err := w.ensureFile(ctx, originalName(j.ID, extOf(j.OriginalFilename)), orig.Alt,
				func() (string, error) { return orig.URL, nil })
			if err != nil {
				return err
			}
			if err := w.l.update(ctx, map[string]any{"original_file_id": id}, "original kept in Files"); err != nil {
				return err
			}
		}
		// The copy must hold the bytes before they are replaced.
		if err := w.waitReady(ctx, j.OriginalFileID); err != nil {
			return err
		}
		src, err := w.c.StageUpload(ctx, processedName(j.ID, w.img.Ext), mimeOf(w.img.Ext), w.img.Data)
		if err != nil {
			return err
		}
		if err := w.c.ReplaceFileImage(ctx, j.MediaID, src); err != nil {
			return err
		}
		if err := w.l.update(ctx, map[string]any{"step": stepReplaced, "result_media_id": j.MediaID}, "image replaced in place"); err != nil {
			return err
		}
	}
	if err := w.waitReady(ctx, j.MediaID); err != nil {
		return err
	}
	return w.finish(ctx, j.MediaID, "processed image in place of the original")
}

// replaceWithNew adds the processed image as a new media at the original's
// position with its alt text and variant links, then detaches the original
// (it stays in the shop's Files, for revert).
func (w *writer) replaceWithNew(ctx context.Context, product *admin.Product) error {
	j := w.l.job
	newID, product, orig, err := w.placeNew(ctx, product)
	if err != nil {
		return err
	}
	if orig != nil {
		if err := w.moveTo(ctx, product, newID, orig.Position); err != nil {
			return err
		}
	}
	if err := w.relink(ctx, product, variantList(j.VariantIDs), j.MediaID, newID); err != nil {
		return err
	}
	if orig != nil {
		if err := w.c.DetachFile(ctx, j.MediaID, j.ProductID); err != nil {
			return err
		}
	}
	if err := w.l.update(ctx, map[string]any{"original_file_id": j.MediaID}, "original detached, kept in Files"); err != nil {
		return err
	}
	return w.finish(ctx, newID, "processed image replaced the original")
}

// add puts the processed image right after the original.
func (w *writer) add(ctx context.Context, product *admin.Product) error {
	newID, product, orig, err := w.placeNew(ctx, product)
	if err != nil {
		return err
	}
	if orig != nil {
		if err := w.moveTo(ctx, product, newID, orig.Position+1); err != nil {
			return err
		}
	}
	return w.finish(ctx, newID, "processed image added after the original")
}

// placeNew puts the processed image on the product as a new media (with
// the original's alt text) and returns its id with the product as it is
// now and the original in it (nil once detached).
func (w *writer) placeNew(ctx context.Context, product *admin.Product) (string, *admin.Product, *admin.Media, error) {
	j := w.l.job
	orig, _ := findMedia(product, j.MediaID)
	if orig == nil && j.ResultMediaID == "" {
		return "", nil, nil, errGone
	}
	alt := j.OriginalAlt
	if orig != nil {
		alt = orig.Alt
	}
	newID, err := w.ensureMedia(ctx, product, alt)
	if err != nil {
		return "", nil, nil, err
	}
	if product, err = w.c.Product(ctx, j.ProductID); err != nil {
		return "", nil, nil, err
	}
	orig, _ = findMedia(product, j.MediaID)
	return newID, product, orig, nil
}

// ensureMedia returns the processed image as a READY media of the
// product. It is created as a file with a name unique to the job
// (fileCreate refuses a second one), then attached: a retry, or another
// worker after a crash, finds it by name instead of adding a copy.
func (w *writer) ensureMedia(ctx context.Context, product *admin.Product, alt string) (string, error) {
	j := w.l.job
	id := j.ResultMediaID
	if id == "" {
		name := processedName(j.ID, w.img.Ext)
		var err error
		id, err = w.ensureFile(ctx, name, alt, func() (string, error) {
			return w.c.StageUpload(ctx, name, mimeOf(w.img.Ext), w.img.Data)
		})
		if err != nil {
			return "", err
		}
		if err := w.l.update(ctx, map[string]any{"result_media_id": id}, "processed image uploaded to Files"); err != nil {
			return "", err
		}
	}
	// Shopify attaches only READY files to products, and a media found
	// attached after a crash may still be processing.
	if err := w.waitReady(ctx, id); err != nil {
		return "", err
	}
	if m, _ := findMedia(product, id); m != nil {
		return id, nil
	}
	if err := w.c.AttachFile(ctx, id, j.ProductID); err != nil {
		return "", err
	}
	return id, nil
}

// ensureFile returns the id of a file with a deterministic name, creating
// it from source() only when it does not exist yet (so nothing is uploaded
// for a file that is already there).
func (w *writer) ensureFile(ctx context.Context, name, alt string, source func() (string, error)) (string, error) {
	if f, err := w.c.FindFile(ctx, name); err != nil {
		return "", err
	} else if f != nil {
		return f.ID, nil
	}
	src, err := source()
	if err != nil {
		return "", err
	}
	id, err := w.c.CreateFile(ctx, name, src, alt)
	if errors.Is(err, admin.ErrFileExists) {
		f, ferr := w.c.FindFile(ctx, name)
		if ferr != nil || f == nil {
			return "", fmt.Errorf("file %s exists but cannot be found: %v", name, ferr)
		}
		return f.ID, nil
	}
	return id, err
}

var errMediaFailed = errors.New("shopify could not process the uploaded image")

func (w *writer) waitReady(ctx context.Context, id string) error {
	st, err := w.c.WaitMediaReady(ctx, id)
	if err != nil {
		return err
	}
	if st[id] != "READY" {
		return fmt.Errorf("%w (media %s is %s)", errMediaFailed, id, st[id])
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
	return w.c.ReorderMedia(ctx, product.ID, []admin.Move{{ID: id, NewPosition: pos}})
}

// relink moves each variant's image from one media to another. A variant
// holds one media, so the old link is removed first; a variant already on
// the new media is left alone.
func (w *writer) relink(ctx context.Context, product *admin.Product, variants []string, from, to string) error {
	current := map[string][]string{}
	for _, v := range product.Variants {
		current[v.ID] = v.MediaIDs
	}
	for _, v := range variants {
		media, ok := current[v]
		if !ok {
			continue // the variant was deleted meanwhile
		}
		if slices.Contains(media, to) {
			continue
		}
		if slices.Contains(media, from) {
			if err := w.c.DetachVariantMedia(ctx, product.ID, []admin.VariantMedia{{VariantID: v, MediaID: from}}); err != nil {
				return err
			}
		}
		if err := w.c.AppendVariantMedia(ctx, product.ID, []admin.VariantMedia{{VariantID: v, MediaID: to}}); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) finish(ctx context.Context, resultID, msg string) error {
	j := w.l.job
	processedURL := ""
	if st, err := w.c.FileStatus(ctx, resultID); err == nil {
		processedURL = st[resultID].URL
	}
	return w.l.release(ctx, map[string]any{"state": models.JobDone, "result_media_id": resultID, "processed_url": processedURL,
		"step": "", "error": ""}, nil, msg+" (job "+strconv.FormatUint(j.ID, 10)+")")
}

// rollback undoes a half-done write-back. The processed file stays in
// Files, so the retry attaches it again instead of uploading a copy.
func (w *writer) rollback(ctx context.Context, cause error) {
	j := w.l.job
	if j.ResultMediaID == j.MediaID || j.Step == stepReplaced {
		// In place: either the bytes were swapped or not. If Shopify could
		// not process the new bytes, put the original's back.
		if errors.Is(cause, errMediaFailed) && j.OriginalFileID != "" {
			if err := w.revertInPlace(ctx); err != nil {
				w.p.log.Error("rollback: restore original bytes", "job", j.ID, "err", err)
				return
			}
			w.l.update(ctx, map[string]any{"step": "", "result_media_id": ""}, "original bytes restored after Shopify failed to process the new ones")
		}
		return
	}
	if j.ResultMediaID == "" {
		return
	}
	product, err := w.c.Product(ctx, j.ProductID)
	if err != nil {
		w.p.log.Error("rollback: read product", "job", j.ID, "err", err)
		return
	}
	if m, _ := findMedia(product, j.ResultMediaID); m == nil {
		return
	}
	if orig, _ := findMedia(product, j.MediaID); orig == nil && j.WriteMode == ModeReplace {
		// The original was detached already: the new one is the only copy
		// on the product, which is a finished write-back, not a duplicate.
		return
	}
	if err := w.relink(ctx, product, variantList(j.VariantIDs), j.ResultMediaID, j.MediaID); err != nil {
		w.p.log.Error("rollback: variant links", "job", j.ID, "err", err)
	}
	if err := w.c.DetachFile(ctx, j.ResultMediaID, j.ProductID); err != nil {
		w.p.log.Error("rollback: detach processed image", "job", j.ID, "err", err)
		return
	}
	w.l.update(ctx, map[string]any{}, "half-done write-back undone; the processed image waits in Files")
}
