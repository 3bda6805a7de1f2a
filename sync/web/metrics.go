package web

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/shopify/admin"
	imgsync "rtbshopify/sync"
)

type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newHTTPMetrics(reg *prometheus.Registry) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtbshopify_http_requests_total",
			Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rtbshopify_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern, method and status.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method", "status"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

func (m *httpMetrics) observe(method, route string, status int, d time.Duration) {
	s := strconv.Itoa(status)
	m.requests.WithLabelValues(route, method, s).Inc()
	m.latency.WithLabelValues(route, method, s).Observe(d.Seconds())
}

// NewRegistry returns a registry with the Go runtime and process
// collectors, a gauge of image jobs by state and the reconciliation's
// figures, read from the database at scrape time.
func NewRegistry(db *gorm.DB, log *slog.Logger) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(&jobsCollector{db: db, log: log, desc: prometheus.NewDesc(
		"rtbshopify_image_jobs", "Image jobs by state.", []string{"state"}, nil)})
	reg.MustRegister(newReconcileCollector(db, log))
	return reg
}

// registerClockMetric exports how far this replica's clock is ahead of
// the database's, which the pipeline follows instead (0 until it is read).
func registerClockMetric(reg *prometheus.Registry, p *imgsync.Pipeline) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rtbshopify_clock_offset_seconds",
		Help: "How far this replica's clock is ahead of the database's (negative: behind), as last read; leases, product locks and due times follow the database's clock.",
	}, func() float64 {
		off, _ := p.ClockOffset()
		return off.Seconds()
	}))
}

type jobsCollector struct {
	db   *gorm.DB
	log  *slog.Logger
	desc *prometheus.Desc
}

func (j *jobsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- j.desc }

func (j *jobsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var rows []struct {
		State string
		N     int64
	}
	if err := j.db.WithContext(ctx).Model(&models.ImageJob{}).Select("state, COUNT(*) AS n").Group("state").Scan(&rows).Error; err != nil {
		j.log.Warn("metrics: count jobs by state", "err", err)
		return
	}
	counts := map[string]int64{}
	for _, r := range rows {
		counts[r.State] = r.N
	}
	for _, s := range models.JobStates {
		ch <- prometheus.MustNewConstMetric(j.desc, prometheus.GaugeValue, float64(counts[s]), s)
	}
}

func metricsHandler(reg *prometheus.Registry) fiber.Handler {
	h := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return func(c *fiber.Ctx) error {
		h(c.Context())
		return nil
	}
}

// RegisterAdminMetrics exports what the Admin API client's Monitor saw: answers naming deprecated
// use, by operation, and calls refused by Shopify's IP allowlist.
func RegisterAdminMetrics(reg *prometheus.Registry, mon *admin.Monitor) {
	reg.MustRegister(&adminCollector{mon: mon,
		deprecated: prometheus.NewDesc("rtbshopify_shopify_deprecated_answers_total",
			"Admin API answers whose X-Shopify-API-Deprecated-Reason named deprecated use, by operation.", []string{"operation"}, nil),
		forbidden: prometheus.NewDesc("rtbshopify_shopify_ip_allowlist_refusals_total",
			"Admin API calls Shopify refused with HTTP 403 (the app's IP allowlist does not cover this server).", nil, nil),
	})
}

type adminCollector struct {
	mon                   *admin.Monitor
	deprecated, forbidden *prometheus.Desc
}

func (a *adminCollector) Describe(ch chan<- *prometheus.Desc) { ch <- a.deprecated; ch <- a.forbidden }

func (a *adminCollector) Collect(ch chan<- prometheus.Metric) {
	for op, n := range a.mon.Deprecations() {
		ch <- prometheus.MustNewConstMetric(a.deprecated, prometheus.CounterValue, float64(n), op)
	}
	ch <- prometheus.MustNewConstMetric(a.forbidden, prometheus.CounterValue, float64(a.mon.IPAllowlistRefusals()))
}
