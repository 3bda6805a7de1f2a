package sync

import (
	"context"
	"errors"
)

// rollback undoes a half-done write-back. The processed file stays in
// Files, so the retry attaches it again instead of uploading a copy.
func (w *writer) rollback(ctx context.Context, cause error) {
	j := w.l.job
	if j.Step == stepRoomMade {
		w.putOriginalBack(ctx)
		return
	}
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
	// The variants to give back are those on the processed image now; with
	// the links recorded at write-back time, also those an interrupted
	// relink left with no image.
	variants := variantsOn(product, j.ResultMediaID)
	if j.Step == stepRelinking {
		variants = append(variants, variantList(j.VariantIDs)...)
	}
	if err := w.relink(ctx, product, variants, j.ResultMediaID, j.MediaID); err != nil {
		w.p.log.Error("rollback: variant links", "job", j.ID, "err", err)
	}
	if err := w.c.DetachFile(ctx, j.ResultMediaID, j.ProductID); err != nil {
		w.p.log.Error("rollback: detach processed image", "job", j.ID, "err", err)
		return
	}
	w.l.update(ctx, map[string]any{"step": ""}, "half-done write-back undone; the processed image waits in Files")
}

// putOriginalBack undoes a write-back that detached the original first to
// make room: the processed image leaves, the original returns to its
// position with its variants.
func (w *writer) putOriginalBack(ctx context.Context) {
	j := w.l.job
	product, err := w.c.Product(ctx, j.ProductID)
	if err != nil {
		w.p.log.Error("rollback: read product", "job", j.ID, "err", err)
		return
	}
	if j.ResultMediaID != "" {
		if m, _ := findMedia(product, j.ResultMediaID); m != nil {
			if err := w.c.DetachFile(ctx, j.ResultMediaID, j.ProductID); err != nil {
				w.p.log.Error("rollback: detach processed image", "job", j.ID, "err", err)
				return
			}
		}
	}
	if m, _ := findMedia(product, j.MediaID); m == nil {
		if err := w.c.AttachFile(ctx, j.MediaID, j.ProductID, nil); err != nil {
			w.p.log.Error("rollback: attach original", "job", j.ID, "err", err)
			return
		}
	}
	if product, err = w.c.Product(ctx, j.ProductID); err != nil {
		w.p.log.Error("rollback: read product", "job", j.ID, "err", err)
		return
	}
	if err := w.moveTo(ctx, product, j.MediaID, j.OriginalPosition); err != nil {
		w.p.log.Error("rollback: move original back", "job", j.ID, "err", err)
		return
	}
	if err := w.relink(ctx, product, variantList(j.VariantIDs), j.ResultMediaID, j.MediaID); err != nil {
		w.p.log.Error("rollback: variant links", "job", j.ID, "err", err)
		return
	}
	w.l.update(ctx, map[string]any{"step": ""}, "half-done write-back undone: the original is back in its place; the processed image waits in Files")
}
