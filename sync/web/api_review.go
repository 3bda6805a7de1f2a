package web

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"rtbshopify/models"
	imgsync "rtbshopify/sync"
)

// maxReviewBody caps approve and reject bodies: a list of ids and a reason.
const maxReviewBody = 64 << 10

// reviewJSON is the review object of a job held for, or decided in, review.
type reviewJSON struct {
	HeldAt    string `json:"heldAt"`
	DecidedAt string `json:"decidedAt"` // "" while it waits
	Reason    string `json:"reason"`
}

func reviewView(j *models.ImageJob) *reviewJSON {
	if j.State != models.JobAwaitingReview && j.State != models.JobRejected || j.ReviewHeldAt == nil {
		return nil
	}
	v := &reviewJSON{HeldAt: j.ReviewHeldAt.UTC().Format(time.RFC3339), Reason: j.ReviewReason}
	if j.ReviewDecidedAt != nil {
		v.DecidedAt = j.ReviewDecidedAt.UTC().Format(time.RFC3339)
	}
	return v
}

// reviewBody is what approve and reject accept: the reason (reject), and
// for the bulk forms ids or all.
type reviewBody struct {
	Reason string   `json:"reason"`
	IDs    []string `json:"ids"`
	All    bool     `json:"all"`
}

func decodeReview(c *fiber.Ctx) (reviewBody, error) {
	var in reviewBody
	if err := decodeOptional(c, maxReviewBody, &in,
		Errorf(fiber.StatusBadRequest, "bad_request", `The body must be a JSON object such as {"reason": "…"} or {"ids": ["…"]}.`)); err != nil {
		return in, err
	}
	in.Reason = strings.TrimSpace(in.Reason)
	return in, nil
}

// decodeOptional decodes a JSON body of at most limit bytes into v; an
// empty body leaves v as it is, and one that is not such JSON is bad.
func decodeOptional(c *fiber.Ctx, limit int, v any, bad *Error) error {
	body := c.Body()
	if len(body) > limit {
		return Errorf(fiber.StatusRequestEntityTooLarge, "too_large", "The request body is too large.")
	}
	if strings.TrimSpace(string(body)) == "" {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return bad
	}
	return nil
}

func (a *API) approveJob(c *fiber.Ctx) error { return a.decideJob(c, true) }
func (a *API) rejectJob(c *fiber.Ctx) error  { return a.decideJob(c, false) }

func (a *API) decideJob(c *fiber.Ctx, approve bool) error {
	in, err := decodeReview(c)
	if err != nil {
		return err
	}
	return a.jobAction(c, fiber.StatusAccepted, func(ctx context.Context, shopID, id uint64) (*models.ImageJob, error) {
		if approve {
			return a.Pipeline.Approve(ctx, shopID, id)
		}
		return a.Pipeline.Reject(ctx, shopID, id, in.Reason)
	})
}

// sendAgain submits a rejected image once more, a new paid submission,
// once the merchant confirmed at least its price now as confirmAmount.
func (a *API) sendAgain(c *fiber.Ctx) error {
	var in struct {
		ConfirmAmount *string `json:"confirmAmount"`
	}
	if err := decodeOptional(c, maxReviewBody, &in, confirmError(`Send {"confirmAmount": "…"}, the price shown, as a decimal string.`)); err != nil {
		return err
	}
	confirm := ""
	if in.ConfirmAmount != nil {
		confirm = strings.TrimSpace(*in.ConfirmAmount)
	}
	return a.jobAction(c, fiber.StatusAccepted, func(ctx context.Context, shopID, id uint64) (*models.ImageJob, error) {
		j, err := a.Pipeline.SendAgain(ctx, shopID, id, confirm)
		if ce := (*imgsync.ConfirmError)(nil); errors.As(err, &ce) {
			return nil, confirmError(ce.Message)
		}
		return j, err
	})
}

func (a *API) approveJobs(c *fiber.Ctx) error { return a.decideJobs(c, true) }
func (a *API) rejectJobs(c *fiber.Ctx) error  { return a.decideJobs(c, false) }

// decideJobs is the bulk form: the held jobs named by ids, or all of them.
func (a *API) decideJobs(c *fiber.Ctx, approve bool) error {
	shop, err := shopOf(c)
	if err != nil {
		return err
	}
	in, err := decodeReview(c)
	if err != nil {
		return err
	}
	if !in.All && len(in.IDs) == 0 {
		return Errorf(fiber.StatusUnprocessableEntity, "invalid_selection", `Name the images with "ids", or send "all": true.`)
	}
	ids := make([]uint64, 0, len(in.IDs))
	for _, s := range in.IDs {
		if n, err := strconv.ParseUint(s, 10, 64); err == nil && n > 0 {
			ids = append(ids, n) // an id that cannot exist names no job of this shop
		}
	}
	if !in.All && len(ids) == 0 {
		return send(c, fiber.StatusAccepted, fiber.Map{"count": 0})
	}
	n, err := a.Pipeline.DecideMany(c.UserContext(), shop.ID, ids, in.All, approve, in.Reason)
	if err != nil {
		return jobError(err)
	}
	return send(c, fiber.StatusAccepted, fiber.Map{"count": n})
}

// dismissReviewReminder records that the merchant saw the reminder of
// images waiting long for review; it is not shown for them again.
func (a *API) dismissReviewReminder(c *fiber.Ctx) error {
	shop, err := shopOf(c)
	if err != nil {
		return err
	}
	if err := a.Pipeline.DismissReviewReminder(c.UserContext(), shop); err != nil {
		return err
	}
	return send(c, fiber.StatusOK, fiber.Map{"dismissed": true})
}
