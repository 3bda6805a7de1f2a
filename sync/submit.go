package sync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/rtb"
	"rtbshopify/shopify/admin"
)

// activeShop returns the job's shop and settings. When there is nothing
// more to do for the job (the shop cannot be read, or uninstalled the app)
// it settles the job and returns ok false with the step's result.
func (p *Pipeline) activeShop(ctx context.Context, l *lease) (shop *models.Shop, s Settings, ok bool, err error) {
	shop, s, err = p.loadShop(ctx, l.job.ShopID)
	if err != nil {
		return nil, s, false, p.fail(ctx, l, err, "Could not read the shop's settings.")
	}
	if shop.State != models.ShopInstalled {
		return nil, s, false, l.release(ctx, map[string]any{"state": models.JobCancelled, "error": "The app was uninstalled."}, nil, "shop uninstalled")
	}
	return shop, s, true, nil
}

// loadShop returns a shop and its settings.
func (p *Pipeline) loadShop(ctx context.Context, shopID uint64) (*models.Shop, Settings, error) {
	var shop models.Shop
	if err := p.o.DB.WithContext(ctx).Where("id = ?", shopID).Take(&shop).Error; err != nil {
		return nil, Settings{}, fmt.Errorf("load shop %d: %w", shopID, err)
	}
	s, err := LoadSettings(ctx, p.o.DB, p.o.Sealer, &shop)
	return &shop, s, err
}

// submit sends the image to Remove The Background, once. The job is marked
// submitting (and its price counted against the month's budget) before the
// request leaves; if the answer is lost, the job stays submitting with no
// ticket: it is never sent again by itself. The callback for its URL, or
// the merchant's explicit resubmit, resolves it.
func (p *Pipeline) submit(ctx context.Context, l *lease) error {
	j := l.job
	shop, settings, ok, err := p.activeShop(ctx, l)
	if !ok {
		return err
	}
	if ok, why := settings.Ready(); !ok {
		return l.release(ctx, map[string]any{"state": models.JobSkipped, "error": why}, nil, why)
	}

	// The webhook's view may be stale: read the image as it is now, by id
	// (reading the product would cost a point for each of its media and
	// variants). Its position, variants and the product's title are the
	// webhook's: the write-back reads them again when it needs them.
	c := p.o.Admin(shop.Domain)
	found, err := c.MediaByID(ctx, j.MediaID)
	if err != nil {
		return p.fail(ctx, l, err, "Could not read the image from Shopify.")
	}
	m, ok := found[j.MediaID]
	if !ok {
		// Deleted from the product, or with it.
		if _, err := c.Gallery(ctx, j.ProductID); errors.Is(err, admin.ErrNotFound) {
			return l.release(ctx, map[string]any{"state": models.JobSkipped, "error": "The product was deleted."}, nil, "product gone")
		} else if err != nil {
			return p.fail(ctx, l, err, "Could not read the product from Shopify.")
		}
		return l.release(ctx, map[string]any{"state": models.JobSkipped, "error": "The image was removed from the product."}, nil, "media gone")
	}
	switch strings.ToUpper(m.Status) {
	case "READY":
	case "FAILED":
		return l.release(ctx, map[string]any{"state": models.JobSkipped, "error": "Shopify could not process this image."}, nil, "media failed")
	default:
		// Shopify is still processing the upload: look again later, it is
		// not a failure.
		if p.now().Sub(j.CreatedAt) > 24*time.Hour {
			return l.release(ctx, map[string]any{"state": models.JobFailed, "error": "Shopify did not finish processing this image within a day."}, nil, "media never ready")
		}
		return l.release(ctx, map[string]any{}, ptr(ms(p.now().Add(p.o.MediaRecheck))), "")
	}
	if m.URL == "" {
		return p.fail(ctx, l, errNotReadyYet, "Shopify has not published the image yet.")
	}
	snapshot := map[string]any{"original_url": m.URL, "original_alt": m.Alt, "original_filename": originalFilename(m.URL)}

	// A process that is stopping starts no submission it might not see
	// through: the job stays queued for the next worker.
	if p.draining.Load() {
		return l.release(ctx, map[string]any{}, ptr(ms(p.now())), "")
	}

	// Reserve the price against the month's budget under the shop's lock,
	// so concurrent workers cannot overspend.
	now := p.now()
	month := now.Format("2006-01")
	var over bool
	err = p.o.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if _, err := models.LockShop(tx, "id = ?", shop.ID); err != nil {
			return err
		}
		if settings.MonthlyBudget != "" {
			spent, err := monthSpend(ctx, tx, shop.ID, month)
			if err != nil {
				return err
			}
			price, _ := parseMoney(settings.TemplatePrice)
			budget, _ := parseMoney(settings.MonthlyBudget)
			if spent+price > budget {
				over = true
				snapshot["state"] = models.JobOverBudget
				snapshot["error"] = fmt.Sprintf("This month's budget of %s is used up (%s spent). Raise the budget in settings to continue, or wait for next month.", settings.MonthlyBudget, formatMoney(spent))
				snapshot["lease_owner"], snapshot["lease_until"], snapshot["run_at"] = nil, nil, nil
				return l.updateTx(ctx, tx, snapshot, "over budget")
			}
		}
		why, err := backfillCapReached(ctx, tx, shop.ID, j, settings.TemplatePrice)
		if err != nil {
			return err
		}
		if why != "" {
			over = true
			snapshot["state"], snapshot["error"] = models.JobOverBudget, why
			snapshot["lease_owner"], snapshot["lease_until"], snapshot["run_at"] = nil, nil, nil
			return l.updateTx(ctx, tx, snapshot, "over the backfill's confirmed amount")
		}
		for k, v := range map[string]any{
			"state": models.JobSubmitting, "submit_started_at": now, "submit_month": month, "price": settings.TemplatePrice,
			"template_id": settings.TemplateID, "write_mode": settings.WriteMode,
			"due_by": now.Add(time.Duration(settings.DeliveryHours) * time.Hour),
			// Not claimable while submitting: an expired lease here means
			// the outcome is unknown, and only the rescuer decides.
			"run_at": nil, "error": "",
		} {
			snapshot[k] = v
		}
		return l.updateTx(ctx, tx, snapshot, "submitting")
	})
	if err != nil && !over && p.requeueUnsent(ctx, l) {
		return nil
	}
	if err != nil || over {
		return err
	}

	ticket, err := p.o.RTB.SubmitImage(ctx, settings.Credentials, rtb.SubmitRequest{
		TemplateID: settings.TemplateID, ImageURL: j.OriginalURL, DeliveryHours: settings.DeliveryHours,
		CallbackURL: p.o.AppURL + "/rtb/callback/" + p.o.Signer.Token(j.ID),
	})
	if err != nil {
		return p.notSubmitted(ctx, l, err)
	}
	return p.submitted(ctx, l, ticket)
}

// requeueUnsent queues the job again when its submitting mark is in the
// database although the mark's commit answered an error (the connection
// dropped after the server committed): nothing was sent, so it is not left
// for the merchant as a submission of unknown outcome. The database may be
// failing still: it tries a few times, well within the lease. It reports
// whether it queued the job.
func (p *Pipeline) requeueUnsent(ctx context.Context, l *lease) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeAfterStop)
	defer cancel()
	for try := 1; ; try++ {
		var j models.ImageJob
		err := p.o.DB.WithContext(ctx).Select("state", "lease_owner").Where("id = ?", l.job.ID).Take(&j).Error
		if err == nil {
			if j.State != models.JobSubmitting || j.LeaseOwner == nil || *j.LeaseOwner != l.token {
				return false // the mark is not in: the job is as it was
			}
			err = l.release(ctx, map[string]any{"state": models.JobQueued, "submit_started_at": nil, "submit_month": nil}, ptr(ms(p.now())),
				"the submission's record was saved but its confirmation lost; nothing was sent: queued again")
			if err == nil || errors.Is(err, ErrLeaseLost) {
				return err == nil
			}
		}
		if try == 5 {
			p.log.Warn("cannot tell whether the submitting mark was saved; the job waits for its lease to run out", "job", l.job.ID, "err", err)
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Duration(try) * 200 * time.Millisecond):
		}
	}
}

func submitFailureMessage(err error) string {
	var api *rtb.APIError
	if errors.As(err, &api) {
		return fmt.Sprintf("Remove The Background refused the image (%s). Check the credentials and template in settings.", api.Code)
	}
	return "Could not reach Remove The Background."
}

// MonthSpend is what the shop's submissions cost this month (the budget's
// view), as a decimal string.
func (p *Pipeline) MonthSpend(ctx context.Context, shopID uint64) (string, error) {
	v, err := monthSpend(ctx, p.o.DB, shopID, p.now().Format("2006-01"))
	if err != nil {
		return "", fmt.Errorf("month spend: %w", err)
	}
	return formatMoney(v), nil
}

// monthSpend adds up the prices of the shop's submissions in a month, and
// the kept charges of unconfirmed ones that were resubmitted, in
// ten-thousandths.
func monthSpend(ctx context.Context, tx *gorm.DB, shopID uint64, month string) (int64, error) {
	var prices, kept []string
	if err := tx.WithContext(ctx).Model(&models.ImageJob{}).Where("shop_id = ? AND submit_month = ?", shopID, month).Pluck("price", &prices).Error; err != nil {
		return 0, err
	}
	if err := tx.WithContext(ctx).Model(&models.JobCharge{}).Where("shop_id = ? AND month = ?", shopID, month).Pluck("price", &kept).Error; err != nil {
		return 0, err
	}
	prices = append(prices, kept...)
	var total int64
	for _, s := range prices {
		v, _ := parseMoney(s)
		total += v
	}
	return total, nil
}

func findMedia(p *admin.Product, mediaID string) (*admin.Media, []string) {
	for i := range p.Media {
		if p.Media[i].ID == mediaID {
			var variants []string
			for _, v := range p.Variants {
				for _, id := range v.MediaIDs {
					if id == mediaID {
						variants = append(variants, v.ID)
					}
				}
			}
			return &p.Media[i], variants
		}
	}
	return nil, nil
}

// poll asks Remove The Background whether the image is delivered and, if
// so, writes it back. Only GET Status's answer (with the shop's own
// credentials) counts: a callback is just a hint to ask now.
func (p *Pipeline) poll(ctx context.Context, l *lease) error {
	j := l.job
	_, settings, ok, err := p.activeShop(ctx, l)
	if !ok {
		return err
	}
	if j.CallbackAt == nil {
		// A callback noted since the claim came before this ask, whose
		// answer is then the newer news.
		if _, at, err := p.callbackNote(ctx, j.ID); err == nil && at != nil {
			j.CallbackAt = at
		}
	}
	st, err := p.o.RTB.Status(ctx, settings.Credentials, *j.Ticket)
	if err != nil {
		var api *rtb.APIError
		if errors.As(err, &api) {
			return l.release(ctx, map[string]any{"state": models.JobFailed,
				"error": fmt.Sprintf("Remove The Background does not report this image (%s). Contact their support with ticket %s.", api.Code, *j.Ticket)}, nil, err.Error())
		}
		return p.fail(ctx, l, err, "Could not ask Remove The Background for the image's status.")
	}
	if !st.Delivered() {
		if st.StatusID != rtb.StatusNew && st.StatusID != rtb.StatusInProduction && st.StatusID != rtb.StatusFinished {
			p.log.Info("unknown Remove The Background status, treated as in progress", "job", j.ID, "status_id", st.StatusID, "status", st.StatusName)
		}
		// Not delivered yet, whether a callback said otherwise or none
		// came: ask again later, at growing intervals; but at once if the
		// first callback comes while this worker asks, as the answer may
		// be older than the news.
		fields, msg := map[string]any{"state": models.JobAwaitingRTB}, fmt.Sprintf("status %d %s", st.StatusID, st.StatusName)
		if j.CallbackAt == nil {
			return l.releaseAwaiting(ctx, fields, p.nextPoll(j), msg)
		}
		return l.release(ctx, fields, ptr(p.nextPoll(j)), msg)
	}
	if st.FinalImageURL == "" {
		return p.fail(ctx, l, errNotReadyYet, "Remove The Background reported the image delivered without a file.")
	}
	if err := l.update(ctx, map[string]any{"state": models.JobWritingBack, "delivered_at": p.now(), "final_image_url": st.FinalImageURL, "attempts": 0, "error": ""}, "delivered"); err != nil {
		return err
	}
	return p.withProduct(ctx, l, func() error { return p.writeBack(ctx, l) })
}
