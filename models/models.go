package models

import (
	"time"
)

// Shop states.
const (
	ShopInstalled   = "installed"
	ShopUninstalled = "uninstalled"
)

// Shop is one store that installed the app. Tokens are stored sealed
// (see Sealer) with the shop domain as associated data.
type Shop struct {
	ID                    uint64 `gorm:"primaryKey"`
	Domain                string
	State                 string
	AccessToken           string // sealed
	AccessTokenExpiresAt  *time.Time
	AccessTokenIssuedAt   *time.Time // with the expiry, the token's lifetime
	RefreshToken          string     // sealed
	RefreshTokenExpiresAt *time.Time
	Scopes                string
	RefreshOwner          *string // the replica refreshing the tokens now
	RefreshUntil          *int64  // unix ms: when that refresh lease lapses
	FairClock             int64   // no longer used: a shop's place in the claim order comes from its queued jobs
	ReconciledAt          *time.Time
	ReconcileCaught       int   // images the last reconciliation found that no webhook had announced
	ReconcileCaughtTotal  int64 // the same, over every reconciliation of the shop
	InstalledAt           *time.Time
	UninstalledAt         *time.Time
	CreatedAt             time.Time
	UpdatedAt             time.Time
}

// Settings is a shop's configuration from the settings page. API keys are sealed.
type Settings struct {
	ShopID             uint64 `gorm:"primaryKey;autoIncrement:false"`
	Enabled            bool
	RTBContactEmail    string `gorm:"column:rtb_contact_email"`
	RTBContactAPIKey   string `gorm:"column:rtb_contact_api_key"`   // sealed
	RTBDeveloperAPIKey string `gorm:"column:rtb_developer_api_key"` // sealed
	TemplateID         string
	TemplateName       string
	TemplatePrice      string
	TemplateCurrency   string
	ImageScope         string
	WriteMode          string
	DeliveryHours      int
	MonthlyBudget      string
	Filters            string // JSON
	Publish            string // auto or review
	ReviewReminderDays int    // a held image older than this is pointed out once

	CreatedAt time.Time
	UpdatedAt time.Time
}

func (Settings) TableName() string { return "shop_settings" }

// Job states, as the contract names them.
const (
	JobQueued      = "queued"
	JobSubmitting  = "submitting"
	JobAwaitingRTB = "awaiting_rtb"
	JobWritingBack = "writing_back"
	JobDone        = "done"
	JobRetrying    = "retrying"
	JobFailed      = "failed"
	JobCancelled   = "cancelled"
	JobSkipped     = "skipped"
	JobOverBudget  = "over_budget"
	JobReverted    = "reverted"
	// JobAwaitingReview holds a processed image in Files for the merchant's decision.
	JobAwaitingReview = "awaiting_review"
	// JobRejected is a held image the merchant turned down; the product never changed.
	JobRejected = "rejected"
)

// JobStates lists every state, for validation and metrics.
var JobStates = []string{JobQueued, JobSubmitting, JobAwaitingRTB, JobWritingBack, JobDone,
	JobRetrying, JobFailed, JobCancelled, JobSkipped, JobOverBudget, JobReverted, JobAwaitingReview, JobRejected}

// ImageJob is one product image on its way through Remove The Background.
// RunAt (unix ms) is when a worker should next act on it; NULL means no
// worker should. A claimed job's RunAt is pushed to its lease expiry, so a
// worker that dies lets the job come back by itself.
type ImageJob struct {
	ID               uint64 `gorm:"primaryKey"`
	ShopID           uint64
	ProductID        string
	ProductTitle     string
	MediaID          string
	OriginalURL      string
	OriginalAlt      string
	OriginalPosition int
	OriginalFilename string
	VariantIDs       string // JSON array of variant gids linked to the media
	OriginalFileID   string // the kept copy of the original, for revert
	WriteMode        string
	TemplateID       string
	Price            string
	State            string
	Attempts         int
	RunAt            *int64
	FairKey          int64  // the job's place in the fair order when it was last queued
	QueueKey         *int64 // FairKey while the job waits to be claimed, nil otherwise
	LeaseOwner       *string
	LeaseUntil       *int64
	Ticket           *string
	SubmitStartedAt  *time.Time
	SubmittedAt      *time.Time
	SubmitMonth      *string // YYYY-MM of a paid submission, for the budget
	CallbackAt       *time.Time
	CallbackTicket   *string // named by a callback that came while the submission was in flight
	DeliveredAt      *time.Time
	FinalImageURL    string
	ProcessedURL     string
	ResultMediaID    string
	BackfillRun      *int64 // the backfill run that queued the job, whose confirmed amount it counts against
	ReviewHeldAt     *time.Time
	ReviewDecidedAt  *time.Time
	ReviewReason     string
	ReviewFileID     string // the processed image in Files while it waits for review
	ReviewNotifiedAt *time.Time
	Step             string
	Error            string
	DueBy            *time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// JobCharge is the charge of a submission whose answer was lost, kept when
// the merchant resubmitted the job: it may have been billed, so the month's
// budget counts it beside the job's own Price.
type JobCharge struct {
	ID     uint64 `gorm:"primaryKey"`
	ShopID uint64
	JobID  uint64
	Month  string
	Price  string
	// Ticket is the earlier submission's, when it was known: its late
	// callbacks are not adopted for the job's next submission.
	Ticket    *string
	CreatedAt time.Time
}

// JobEvent is one line of a job's append-only audit trail.
type JobEvent struct {
	ID        uint64 `gorm:"primaryKey"`
	JobID     uint64
	ShopID    uint64
	FromState string
	ToState   string
	Message   string
	CreatedAt time.Time
}

// WebhookDelivery is a Shopify webhook in the inbox, recorded by its
// delivery id so a retry of the same delivery is recognised. PendingAt
// (unix ms) is when its fan-out is next due; nil once it is done, when
// the body is dropped.
type WebhookDelivery struct {
	ID          uint64 `gorm:"primaryKey"`
	WebhookID   string
	Topic       string
	ShopDomain  string
	ReceivedAt  time.Time
	TriggeredAt *time.Time
	Body        []byte
	PendingAt   *int64
	InboxKey    *int64 // its place in the fan-out order; nil when done or waiting to be retried
	Attempts    int
}

// CronRun is one period of one cron job; its unique (name, period) makes
// exactly one replica run it.
type CronRun struct {
	ID         uint64 `gorm:"primaryKey"`
	Name       string
	Period     string
	Owner      string
	StartedAt  time.Time
	FinishedAt *time.Time
	Error      string
}

// Backfill is the progress of processing a shop's existing catalogue.
type Backfill struct {
	ShopID        uint64 `gorm:"primaryKey;autoIncrement:false"`
	State         string
	CursorAfter   string
	ProductsSeen  int
	ImagesQueued  int
	ImagesSkipped int
	Run           int64  // counts the shop's backfill starts; the jobs a run queues carry it
	ConfirmAmount string // what the merchant confirmed this run may spend, "" for no cap
	Error         string
	LeaseUntil    *int64
	StartedAt     time.Time
	FinishedAt    *time.Time
	UpdatedAt     time.Time
}

// ProductLock lets one worker at a time change a product's gallery.
type ProductLock struct {
	ShopID    uint64 `gorm:"primaryKey;autoIncrement:false"`
	ProductID string `gorm:"primaryKey"`
	Owner     string
	UntilMs   int64
	// PendingJob is Shopify's reorder job of the product's media that the
	// lock's holder started and waits for, "" when none.
	PendingJob string
}
