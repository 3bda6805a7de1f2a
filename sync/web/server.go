// Package web is the app's HTTP face: the Fiber app with its middleware
// (recover, request ids, access logs, metrics, a JSON error handler that
// never leaks internals), the health endpoints, the JSON API under /api and
// the Remove The Background callback route.
package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"rtbshopify/shopify/admin"
	imgsync "rtbshopify/sync"
)

// Error is an error with an HTTP status, a stable code and a message that
// is safe to show to the caller.
type Error struct {
	Status  int
	Code    string
	Message string
	Fields  map[string]string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf builds an *Error.
func Errorf(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

// ServerOptions configures the Fiber app.
type ServerOptions struct {
	DB       *gorm.DB
	Log      *slog.Logger
	Registry *prometheus.Registry
	// BodyLimit caps every request body; routes cap further where they need.
	BodyLimit int
}

// NewServer builds the Fiber app with middleware and health endpoints.
// Routes are added by the caller.
func NewServer(o ServerOptions) *fiber.App {
	if o.BodyLimit == 0 {
		o.BodyLimit = 4 << 20
	}
	m := newHTTPMetrics(o.Registry)
	app := fiber.New(fiber.Config{
		AppName:               "rtbshopify",
		DisableStartupMessage: true,
		ReadTimeout:           15 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           60 * time.Second,
		BodyLimit:             o.BodyLimit,
		ErrorHandler:          errorHandler(o.Log),
	})
	app.Use(recover.New(recover.Config{
		EnableStackTrace: true,
		StackTraceHandler: func(c *fiber.Ctx, e any) {
			o.Log.Error("panic in handler", "panic", e, "path", c.Path(), "request_id", requestID(c))
		},
	}))
	app.Use(requestLogger(o.Log, m))
	app.Get("/healthz", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"status": "ok"})
	})
	app.Get("/readyz", func(c *fiber.Ctx) error {
		ctx, cancel := context.WithTimeout(c.UserContext(), time.Second)
		defer cancel()
		sqlDB, err := o.DB.DB()
		if err == nil {
			err = sqlDB.PingContext(ctx)
		}
		if err != nil {
			o.Log.Warn("readiness: database unreachable", "err", err)
			return Errorf(fiber.StatusServiceUnavailable, "not_ready", "database unreachable")
		}
		return c.JSON(fiber.Map{"status": "ready"})
	})
	app.Get("/metrics", metricsHandler(o.Registry))
	return app
}

const requestIDKey = "request_id"

func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals(requestIDKey).(string)
	return id
}

// validRequestID accepts a caller's id only when it is short and plain.
func validRequestID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r == '.' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')) {
			return false
		}
	}
	return true
}

func requestLogger(log *slog.Logger, m *httpMetrics) fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := time.Now()
		id := c.Get(fiber.HeaderXRequestID)
		if validRequestID(id) {
			id = strings.Clone(id)
		} else {
			b := make([]byte, 8)
			rand.Read(b)
			id = hex.EncodeToString(b)
		}
		c.Locals(requestIDKey, id)
		c.Set(fiber.HeaderXRequestID, id)

		err := c.Next()
		if err != nil {
			// Let the error handler write the answer now so the status
			// below is the one the client gets.
			if herr := c.App().ErrorHandler(c, err); herr != nil {
				c.Status(fiber.StatusInternalServerError)
			}
		}
		status := c.Response().StatusCode()
		// Label by route pattern, never by raw path (unbounded label values).
		route := c.Route().Path
		if (status == fiber.StatusNotFound || status == fiber.StatusMethodNotAllowed) && route == "/" && c.Path() != "/" {
			route = "unmatched"
		}
		elapsed := time.Since(start)
		// Label values outlive the request: copy them out of Fiber's buffers.
		m.observe(strings.Clone(c.Method()), strings.Clone(route), status, elapsed)
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		} else if route == "/healthz" || route == "/readyz" || route == "/metrics" {
			level = slog.LevelDebug
		}
		// The path, not the URL: query strings may carry tokens and
		// callback paths carry a secret, so log the route pattern for those.
		path := c.Path()
		if strings.HasPrefix(route, "/rtb/callback") {
			path = route
		}
		log.Log(c.UserContext(), level, "http request",
			"request_id", id, "method", c.Method(), "path", path, "route", route,
			"status", status, "ms", elapsed.Milliseconds())
		return nil
	}
}

// errorHandler answers every error as the contract's JSON and never shows
// an internal error's text to the caller.
func errorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		var e *Error
		var fe *fiber.Error
		switch {
		case errors.As(err, &e):
		case errors.As(err, &fe):
			e = &Error{Status: fe.Code, Code: codeFor(fe.Code), Message: fe.Message}
		case errors.Is(err, admin.ErrIPNotAllowed):
			// Only the operator can fix it (the Admin API client counts it for /metrics):
			// say what to change instead of "try again".
			log.WarnContext(c.UserContext(), "request refused by Shopify's IP allowlist", "request_id", requestID(c), "path", c.Path(), "err", err)
			e = Errorf(fiber.StatusServiceUnavailable, "ip_allowlist", imgsync.AllowlistRequestMessage)
		default:
			log.ErrorContext(c.UserContext(), "request failed", "request_id", requestID(c), "path", c.Path(), "err", err)
			e = Errorf(fiber.StatusInternalServerError, "internal", "Something went wrong on our side; please try again. Reference: "+requestID(c))
		}
		body := fiber.Map{"code": e.Code, "message": e.Message}
		if len(e.Fields) > 0 {
			body["fields"] = e.Fields
		}
		return c.Status(e.Status).JSON(fiber.Map{"error": body})
	}
}

func codeFor(status int) string {
	switch status {
	case fiber.StatusNotFound:
		return "not_found"
	case fiber.StatusMethodNotAllowed:
		return "method_not_allowed"
	case fiber.StatusRequestEntityTooLarge:
		return "too_large"
	case fiber.StatusBadRequest:
		return "bad_request"
	case fiber.StatusUnauthorized:
		return "unauthorized"
	case fiber.StatusRequestTimeout:
		return "timeout"
	}
	if status >= 500 {
		return "internal"
	}
	return "error_" + strconv.Itoa(status)
}
