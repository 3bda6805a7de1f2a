package web

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"rtbshopify/models"
	imgsync "rtbshopify/sync"
)

const (
	defaultJobsLimit = 50
	maxJobsLimit     = 200
)

// jobJSON is the contract's Job JSON plus read-only extras for the
// dashboard's buttons.
type jobJSON struct {
	ID           string `json:"id"`
	ProductID    string `json:"productId"`
	ProductTitle string `json:"productTitle"`
	MediaID      string `json:"mediaId"`
	OriginalURL  string `json:"originalUrl"`
	ProcessedURL string `json:"processedUrl"`
	State        string `json:"state"`
	Ticket       string `json:"ticket"`
	Attempts     int    `json:"attempts"`
	Error        string `json:"error"`
	CreatedAt    string `json:"createdAt"`
	UpdatedAt    string `json:"updatedAt"`

	WriteMode       string `json:"writeMode"`
	ResultMediaID   string `json:"resultMediaId"`
	Price           string `json:"price"`
	Uncertain       bool   `json:"uncertain"`
	RevertRequested bool   `json:"revertRequested"`
	CanRetry        bool   `json:"canRetry"`
	CanRevert       bool   `json:"canRevert"`
	CanDecide       bool   `json:"canDecide"` // held for review: approve or reject

	Review *reviewJSON `json:"review,omitempty"`
}

// notice is a condition the dashboard shows as a banner above the jobs, whatever page or filter
// is on screen: jobs is how many of the shop's jobs it holds up. "notices" is left out of the
// answer when there are none.
type notice struct {
	Code    string `json:"code"`
	Jobs    int64  `json:"jobs"`
	Message string `json:"message"`
}

func jobView(j *models.ImageJob) jobJSON {
	ticket := ""
	if j.Ticket != nil {
		ticket = *j.Ticket
	}
	// A submission whose worker died: Remove The Background may or may not
	// have the image; Retry resubmits with the merchant's consent.
	uncertain := j.State == models.JobSubmitting && j.Ticket == nil && j.LeaseOwner == nil
	revertRequested := j.State == models.JobDone && j.Step == imgsync.StepRevertRequested
	return jobJSON{
		ID: strconv.FormatUint(j.ID, 10), ProductID: j.ProductID, ProductTitle: j.ProductTitle, MediaID: j.MediaID,
		OriginalURL: j.OriginalURL, ProcessedURL: j.ProcessedURL, State: j.State, Ticket: ticket,
		Attempts: j.Attempts, Error: j.Error,
		CreatedAt: j.CreatedAt.UTC().Format(time.RFC3339), UpdatedAt: j.UpdatedAt.UTC().Format(time.RFC3339),
		WriteMode: j.WriteMode, ResultMediaID: j.ResultMediaID, Price: j.Price,
		Uncertain: uncertain, RevertRequested: revertRequested,
		CanRetry:  j.State == models.JobFailed || uncertain,
		CanRevert: j.State == models.JobDone && !revertRequested,
		CanDecide: j.State == models.JobAwaitingReview,
		Review:    reviewView(j),
	}
}

func (a *API) listJobs(c *fiber.Ctx) error {
	shop, err := shopOf(c)
	if err != nil {
		return err
	}
	state := c.Query("state")
	if state != "" && !slices.Contains(models.JobStates, state) {
		return Errorf(fiber.StatusBadRequest, "bad_request", "Unknown state "+strconv.Quote(state)+"; use one of the job states or leave it out.")
	}
	state = string([]byte(state)) // c.Query's memory is reused after the handler
	limit := defaultJobsLimit
	if raw := c.Query("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxJobsLimit {
			return Errorf(fiber.StatusBadRequest, "bad_request", "limit must be a whole number from 1 to "+strconv.Itoa(maxJobsLimit)+".")
		}
		limit = n
	}
	cursor := c.Query("cursor")
	if cursor != "" {
		if n, err := strconv.ParseUint(cursor, 10, 64); err != nil || n == 0 {
			return Errorf(fiber.StatusBadRequest, "bad_request", "The cursor is not one this API handed out; start again without it.")
		}
		cursor = string([]byte(cursor))
	}
	jobs, next, err := a.Pipeline.ListJobs(c.UserContext(), shop.ID, state, limit, cursor)
	if err != nil {
		return err
	}
	out := make([]jobJSON, len(jobs))
	for i := range jobs {
		out[i] = jobView(&jobs[i])
	}
	blocked, err := a.Pipeline.AllowlistBlocked(c.UserContext(), shop.ID)
	if err != nil {
		return err
	}
	resp := fiber.Map{"jobs": out, "nextCursor": next}
	var notices []notice
	if blocked > 0 {
		notices = append(notices, notice{Code: "ip_allowlist", Jobs: blocked, Message: imgsync.AllowlistMessage})
	}
	waiting, err := a.Pipeline.ReviewReminder(c.UserContext(), shop)
	if err != nil {
		return err
	}
	if waiting > 0 {
		notices = append(notices, notice{Code: "review_waiting", Jobs: waiting,
			Message: "Processed images have waited for your review for a while. They are not published until you approve them."})
	}
	if len(notices) > 0 {
		resp["notices"] = notices
	}
	return send(c, fiber.StatusOK, resp)
}

// jobID reads :id; an id that cannot exist is simply not found.
func jobID(c *fiber.Ctx) (uint64, error) {
	id, err := strconv.ParseUint(c.Params("id"), 10, 64)
	if err != nil || id == 0 {
		return 0, notFound()
	}
	return id, nil
}

func notFound() *Error {
	return Errorf(fiber.StatusNotFound, "not_found", "No such job in this shop.")
}

// jobError maps the pipeline's errors to answers.
func jobError(err error) error {
	var ce *imgsync.ConflictError
	switch {
	case errors.Is(err, imgsync.ErrNotFound):
		return notFound()
	case errors.As(err, &ce):
		return Errorf(fiber.StatusConflict, "conflict", ce.Message)
	case errors.Is(err, imgsync.ErrConflict):
		return Errorf(fiber.StatusConflict, "conflict", "This action does not apply to the job in its current state.")
	}
	return err
}

func (a *API) getJob(c *fiber.Ctx) error {
	return a.jobAction(c, fiber.StatusOK, a.Pipeline.GetJob)
}

func (a *API) retryJob(c *fiber.Ctx) error {
	return a.jobAction(c, fiber.StatusAccepted, a.Pipeline.Retry)
}

func (a *API) revertJob(c *fiber.Ctx) error {
	return a.jobAction(c, fiber.StatusAccepted, a.Pipeline.Revert)
}

func (a *API) jobAction(c *fiber.Ctx, status int, act func(ctx context.Context, shopID, jobID uint64) (*models.ImageJob, error)) error {
	shop, err := shopOf(c)
	if err != nil {
		return err
	}
	id, err := jobID(c)
	if err != nil {
		return err
	}
	j, err := act(c.UserContext(), shop.ID, id)
	if err != nil {
		return jobError(err)
	}
	return send(c, status, jobView(j))
}

// backfillJSON is the progress of processing the existing catalogue.
type backfillJSON struct {
	State         string `json:"state"`
	ProductsSeen  int    `json:"productsSeen"`
	ImagesQueued  int    `json:"imagesQueued"`
	ImagesSkipped int    `json:"imagesSkipped"`
	StartedAt     string `json:"startedAt"`
	FinishedAt    string `json:"finishedAt"` // "" while running
	Error         string `json:"error"`
}

func backfillView(b *models.Backfill) fiber.Map {
	v := backfillJSON{State: b.State, ProductsSeen: b.ProductsSeen, ImagesQueued: b.ImagesQueued,
		ImagesSkipped: b.ImagesSkipped, StartedAt: b.StartedAt.UTC().Format(time.RFC3339), Error: b.Error}
	if b.FinishedAt != nil {
		v.FinishedAt = b.FinishedAt.UTC().Format(time.RFC3339)
	}
	return fiber.Map{"backfill": v}
}

func (a *API) backfillStatus(c *fiber.Ctx) error {
	shop, err := shopOf(c)
	if err != nil {
		return err
	}
	b, err := a.Pipeline.BackfillStatus(c.UserContext(), shop.ID)
	if errors.Is(err, imgsync.ErrNotFound) {
		return Errorf(fiber.StatusNotFound, "not_found", "The catalogue has never been processed; start it from the dashboard.")
	}
	if err != nil {
		return err
	}
	return send(c, fiber.StatusOK, backfillView(b))
}
