package web

import (
	"context"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"rtbshopify/models"
)

// reconcileCollector reports, from the database at scrape time so every
// replica agrees, how many images reconciliation caught that no webhook
// had announced, and when it last finished.
type reconcileCollector struct {
	db           *gorm.DB
	log          *slog.Logger
	caught, last *prometheus.Desc
}

func newReconcileCollector(db *gorm.DB, log *slog.Logger) *reconcileCollector {
	return &reconcileCollector{db: db, log: log,
		caught: prometheus.NewDesc("rtbshopify_reconcile_caught_images_total",
			"Images the reconciliation queued for processing that no webhook had brought.", nil, nil),
		last: prometheus.NewDesc("rtbshopify_reconcile_last_run_timestamp_seconds",
			"When a reconciliation last finished (Unix time; 0 before the first).", nil, nil),
	}
}

func (r *reconcileCollector) Describe(ch chan<- *prometheus.Desc) { ch <- r.caught; ch <- r.last }

func (r *reconcileCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var caught int64
	if err := r.db.WithContext(ctx).Model(&models.Shop{}).Select("COALESCE(SUM(reconcile_caught_total), 0)").Scan(&caught).Error; err != nil {
		r.log.Warn("metrics: count reconciled images", "err", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(r.caught, prometheus.CounterValue, float64(caught))
	var run models.CronRun
	last := 0.0
	err := r.db.WithContext(ctx).Where("name = ? AND finished_at IS NOT NULL", "reconcile").Order("finished_at DESC").Limit(1).Find(&run).Error
	if err != nil {
		r.log.Warn("metrics: last reconciliation", "err", err)
		return
	}
	if run.FinishedAt != nil {
		last = float64(run.FinishedAt.UnixMilli()) / 1000
	}
	ch <- prometheus.MustNewConstMetric(r.last, prometheus.GaugeValue, last)
}

// reconciliationJSON is GET /api/reconciliation: when the shop's products
// were last reconciled and what that caught.
type reconciliationJSON struct {
	// LastRunAt is when the last pass started listing the shop's products
	// (null before the first).
	LastRunAt *time.Time `json:"lastRunAt"`
	// LastCaught is how many images that pass found that no webhook had
	// announced; CaughtTotal counts them over every pass.
	LastCaught  int   `json:"lastCaught"`
	CaughtTotal int64 `json:"caughtTotal"`
}

func (a *API) reconciliation(c *fiber.Ctx) error {
	shop, err := shopOf(c)
	if err != nil {
		return err
	}
	var s models.Shop
	if err := a.DB.WithContext(c.UserContext()).Select("id", "reconciled_at", "reconcile_caught", "reconcile_caught_total").
		Where("id = ?", shop.ID).Take(&s).Error; err != nil {
		return err
	}
	v := reconciliationJSON{LastRunAt: s.ReconciledAt, LastCaught: s.ReconcileCaught, CaughtTotal: s.ReconcileCaughtTotal}
	if v.LastRunAt != nil {
		t := v.LastRunAt.UTC()
		v.LastRunAt = &t
	}
	return send(c, fiber.StatusOK, fiber.Map{"reconciliation": v})
}
