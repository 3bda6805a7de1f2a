// Package config owns the app's one typed configuration: every environment
// variable of the contract, parsed once, validated, and printable without
// leaking a secret.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Defaults named by the contract.
const (
	DefaultListenAddr  = ":8080"
	DefaultDatabaseURL = "sqlite:rtbshopify.db"
	DefaultScopes      = "read_products,write_products,write_files"
	DefaultAPIVersion  = "2026-10"
	DefaultRTBBaseURL  = "http://api.removethebackground.com/REST.svc"
	DefaultWorkers     = 4
	// DefaultShopConcurrency is how many of one shop's jobs the whole
	// deployment works on at once.
	DefaultShopConcurrency = 2
	// DefaultReconcileInterval is how often products updated since the
	// last pass are listed, to catch webhooks that never came.
	DefaultReconcileInterval = 15 * time.Minute
	// DefaultRTBPollInterval is how long a job waits for its callback
	// before GET Status is asked, and the first step of the backoff after.
	DefaultRTBPollInterval = 30 * time.Minute
)

// Key is one encryption key from ENCRYPTION_KEYS.
type Key struct {
	ID     string
	Secret []byte // exactly 32 bytes
}

// Config is every setting the app reads from its environment.
type Config struct {
	ListenAddr               string
	AppURL                   string
	DatabaseURL              string
	ShopifyAPIKey            string
	ShopifyAPISecret         string
	ShopifyAPISecretPrevious string
	ShopifyScopes            []string
	ShopifyAPIVersion        string
	ShopifyAdminBaseURL      string
	RTBBaseURL               string
	RTBFilesBaseURL          string
	EncryptionKeys           []Key
	AllowPrivateDownloads    bool
	Workers                  int
	// ShopConcurrency caps the jobs of one shop worked on at once across
	// every replica (SHOP_CONCURRENCY): a shop's Admin API rate limit is
	// per shop, not per process.
	ShopConcurrency   int
	ReconcileInterval time.Duration
	RTBPollInterval   time.Duration
	LogLevel          slog.Level
	LogFormat         string
}

// FieldError says which variable is wrong and how.
type FieldError struct {
	Var string
	Msg string
}

func (e *FieldError) Error() string { return e.Var + ": " + e.Msg }

// Load reads every variable through getenv and fills in the defaults. It
// reports values that cannot be parsed; Validate reports values that are
// missing or unusable for a command.
func Load(getenv func(string) string) (Config, error) {
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	c := Config{
		ListenAddr:               get("LISTEN_ADDR", ""),
		AppURL:                   strings.TrimRight(get("APP_URL", get("SHOPIFY_APP_URL", "")), "/"),
		DatabaseURL:              get("DATABASE_URL", DefaultDatabaseURL),
		ShopifyAPIKey:            get("SHOPIFY_API_KEY", ""),
		ShopifyAPISecret:         get("SHOPIFY_API_SECRET", ""),
		ShopifyAPISecretPrevious: get("SHOPIFY_API_SECRET_PREVIOUS", ""),
		ShopifyAPIVersion:        get("SHOPIFY_API_VERSION", DefaultAPIVersion),
		ShopifyAdminBaseURL:      strings.TrimRight(get("SHOPIFY_ADMIN_BASE_URL", ""), "/"),
		RTBBaseURL:               strings.TrimRight(get("RTB_BASE_URL", DefaultRTBBaseURL), "/"),
		RTBFilesBaseURL:          get("RTB_FILES_BASE_URL", ""),
		LogFormat:                strings.ToLower(get("LOG_FORMAT", "json")),
	}
	var errs []error
	// The Shopify CLI (`shopify app dev`) starts the app with its own names: PORT, SHOPIFY_APP_URL
	// (its tunnel) and SCOPES. They count only where the app's own variable is unset.
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
		if port := get("PORT", ""); port != "" {
			if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
				errs = append(errs, &FieldError{"PORT", fmt.Sprintf("%q is not a TCP port number", port)})
			} else {
				c.ListenAddr = ":" + port
			}
		}
	}
	for _, s := range strings.Split(get("SHOPIFY_SCOPES", get("SCOPES", DefaultScopes)), ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.ShopifyScopes = append(c.ShopifyScopes, s)
		}
	}
	var err error
	if c.AllowPrivateDownloads, err = parseBool(get("ALLOW_PRIVATE_DOWNLOADS", "false")); err != nil {
		errs = append(errs, &FieldError{"ALLOW_PRIVATE_DOWNLOADS", err.Error()})
	}
	workers := get("WORKERS", strconv.Itoa(DefaultWorkers))
	if c.Workers, err = strconv.Atoi(workers); err != nil {
		errs = append(errs, &FieldError{"WORKERS", fmt.Sprintf("%q is not a whole number", workers)})
	}
	perShop := get("SHOP_CONCURRENCY", strconv.Itoa(DefaultShopConcurrency))
	if c.ShopConcurrency, err = strconv.Atoi(perShop); err != nil {
		errs = append(errs, &FieldError{"SHOP_CONCURRENCY", fmt.Sprintf("%q is not a whole number", perShop)})
	}
	for _, d := range []struct {
		name string
		def  time.Duration
		dst  *time.Duration
	}{
		{"RECONCILE_INTERVAL", DefaultReconcileInterval, &c.ReconcileInterval},
		{"RTB_POLL_INTERVAL", DefaultRTBPollInterval, &c.RTBPollInterval},
	} {
		raw := get(d.name, d.def.String())
		if *d.dst, err = time.ParseDuration(raw); err != nil {
			errs = append(errs, &FieldError{d.name, fmt.Sprintf("%q is not a duration such as 15m, 2s or 1h30m", raw)})
		}
	}
	if err := c.LogLevel.UnmarshalText([]byte(get("LOG_LEVEL", "info"))); err != nil {
		errs = append(errs, &FieldError{"LOG_LEVEL", "must be debug, info, warn or error"})
	}
	if raw := get("ENCRYPTION_KEYS", ""); raw != "" {
		if c.EncryptionKeys, err = ParseKeys(raw); err != nil {
			errs = append(errs, &FieldError{"ENCRYPTION_KEYS", err.Error()})
		}
	}
	if c.RTBFilesBaseURL == "" {
		if u, err := url.Parse(c.RTBBaseURL); err == nil && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https") {
			c.RTBFilesBaseURL = u.Scheme + "://" + u.Host + "/"
		}
	}
	return c, errors.Join(errs...)
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true or false", s)
}

// ParseKeys parses ENCRYPTION_KEYS: comma-separated KEYID:BASE64_32_BYTES.
func ParseKeys(raw string) ([]Key, error) {
	var keys []Key
	seen := map[string]bool{}
	for i, part := range strings.Split(raw, ",") {
		part = strings.TrimSpace(part)
		id, b64, ok := strings.Cut(part, ":")
		if !ok || id == "" || b64 == "" {
			return nil, fmt.Errorf("entry %d is not KEYID:BASE64 (32 bytes base64-encoded, e.g. from `rtbshopify keygen`)", i+1)
		}
		if !keyIDPattern.MatchString(id) {
			return nil, fmt.Errorf("entry %d: key id %q may only use letters, digits, '-' and '_'", i+1, id)
		}
		if seen[id] {
			return nil, fmt.Errorf("entry %d: key id %q appears twice", i+1, id)
		}
		seen[id] = true
		secret, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			if secret, err = base64.RawStdEncoding.DecodeString(b64); err != nil {
				return nil, fmt.Errorf("entry %d (key %q) is not valid base64", i+1, id)
			}
		}
		if len(secret) != 32 {
			return nil, fmt.Errorf("entry %d (key %q) decodes to %d bytes; each key must be exactly 32 bytes", i+1, id, len(secret))
		}
		keys = append(keys, Key{ID: id, Secret: secret})
	}
	return keys, nil
}

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// Purpose says what a command needs from the configuration.
type Purpose int

const (
	// ForServe is the full app: every required variable.
	ForServe Purpose = iota
	// ForMigrate only needs the database.
	ForMigrate
)

// Validate reports every missing or unusable variable for the purpose,
// each message naming the variable.
func (c Config) Validate(p Purpose) error {
	var errs []error
	add := func(v, msg string) { errs = append(errs, &FieldError{v, msg}) }

	if err := ValidateDatabaseURL(c.DatabaseURL); err != nil {
		add("DATABASE_URL", err.Error())
	}
	if p == ForMigrate {
		return errors.Join(errs...)
	}
	if c.AppURL == "" {
		add("APP_URL", "is required: the public https URL of the app (callback URLs are built from it); `shopify app dev` sets it as SHOPIFY_APP_URL")
	} else if err := validateAppURL(c.AppURL); err != nil {
		add("APP_URL", err.Error())
	}
	if c.ShopifyAPIKey == "" {
		add("SHOPIFY_API_KEY", "is required: the app's client id from the Partner Dashboard")
	}
	if c.ShopifyAPISecret == "" {
		add("SHOPIFY_API_SECRET", "is required: the app's client secret from the Partner Dashboard")
	}
	if len(c.EncryptionKeys) == 0 {
		add("ENCRYPTION_KEYS", "is required: KEYID:BASE64_32_BYTES; `rtbshopify keygen` prints one (keep it in .env for development)")
	}
	if !apiVersionPattern.MatchString(c.ShopifyAPIVersion) {
		add("SHOPIFY_API_VERSION", fmt.Sprintf("%q is not a version like 2026-10", c.ShopifyAPIVersion))
	}
	if len(c.ShopifyScopes) == 0 {
		add("SHOPIFY_SCOPES", "must name at least one scope")
	}
	for _, v := range []struct{ name, val string }{
		{"SHOPIFY_ADMIN_BASE_URL", c.ShopifyAdminBaseURL},
		{"RTB_BASE_URL", c.RTBBaseURL},
		{"RTB_FILES_BASE_URL", c.RTBFilesBaseURL},
	} {
		if v.val == "" {
			// SHOPIFY_ADMIN_BASE_URL is optional; an empty files base
			// only follows from a bad RTB_BASE_URL, reported already.
			continue
		}
		if u, err := url.Parse(v.val); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add(v.name, fmt.Sprintf("%q is not an absolute http(s) URL", v.val))
		}
	}
	if c.Workers < 1 || c.Workers > 256 {
		add("WORKERS", fmt.Sprintf("must be between 1 and 256, got %d", c.Workers))
	}
	if c.ShopConcurrency < 1 || c.ShopConcurrency > 64 {
		add("SHOP_CONCURRENCY", fmt.Sprintf("must be between 1 and 64, got %d", c.ShopConcurrency))
	}
	// A second is the finest the cron schedules; beyond a day a missed
	// webhook or a dropped callback would wait longer than the merchant's
	// requested delivery time.
	for _, d := range []struct {
		name string
		val  time.Duration
	}{{"RECONCILE_INTERVAL", c.ReconcileInterval}, {"RTB_POLL_INTERVAL", c.RTBPollInterval}} {
		if d.val < time.Second || d.val > 24*time.Hour {
			add(d.name, fmt.Sprintf("must be between 1s and 24h, got %s", d.val))
		}
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		add("LOG_FORMAT", fmt.Sprintf("must be json or text, got %q", c.LogFormat))
	}
	return errors.Join(errs...)
}

var apiVersionPattern = regexp.MustCompile(`^(\d{4}-(01|04|07|10)|unstable)$`)

func validateAppURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q must not carry a query or fragment", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if h := u.Hostname(); h == "localhost" || h == "127.0.0.1" || h == "::1" {
			return nil
		}
		return fmt.Errorf("%q must use https (plain http is accepted only for localhost and 127.0.0.1)", s)
	}
	return fmt.Errorf("%q must be an https URL", s)
}

// ValidateDatabaseURL accepts sqlite:PATH and mysql://USER:PASS@HOST:PORT/DB.
func ValidateDatabaseURL(s string) error {
	switch {
	case strings.HasPrefix(s, "sqlite:"):
		if strings.TrimPrefix(s, "sqlite:") == "" {
			return errors.New("sqlite: needs a file path, e.g. sqlite:rtbshopify.db")
		}
		return nil
	case strings.HasPrefix(s, "mysql://"):
		u, err := url.Parse(s)
		if err != nil {
			return errors.New("is not a valid mysql://USER:PASS@HOST:PORT/DB URL")
		}
		if u.Host == "" || strings.Trim(u.Path, "/") == "" || u.User == nil {
			return errors.New("must look like mysql://USER:PASS@HOST:PORT/DB")
		}
		return nil
	}
	return errors.New("must start with sqlite: or mysql://")
}

// String prints the configuration with every secret redacted.
func (c Config) String() string {
	var b strings.Builder
	for _, a := range c.attrs() {
		fmt.Fprintf(&b, "%s=%v ", a.Key, a.Value)
	}
	return strings.TrimSpace(b.String())
}

// LogValue makes slog print the redacted form.
func (c Config) LogValue() slog.Value { return slog.GroupValue(c.attrs()...) }

func (c Config) attrs() []slog.Attr {
	ids := make([]string, len(c.EncryptionKeys))
	for i, k := range c.EncryptionKeys {
		ids[i] = k.ID + ":[redacted]"
	}
	return []slog.Attr{
		slog.String("LISTEN_ADDR", c.ListenAddr),
		slog.String("APP_URL", c.AppURL),
		slog.String("DATABASE_URL", RedactURL(c.DatabaseURL)),
		slog.String("SHOPIFY_API_KEY", c.ShopifyAPIKey),
		slog.String("SHOPIFY_API_SECRET", redact(c.ShopifyAPISecret)),
		slog.String("SHOPIFY_API_SECRET_PREVIOUS", redact(c.ShopifyAPISecretPrevious)),
		slog.String("SHOPIFY_SCOPES", strings.Join(c.ShopifyScopes, ",")),
		slog.String("SHOPIFY_API_VERSION", c.ShopifyAPIVersion),
		slog.String("SHOPIFY_ADMIN_BASE_URL", c.ShopifyAdminBaseURL),
		slog.String("RTB_BASE_URL", c.RTBBaseURL),
		slog.String("RTB_FILES_BASE_URL", c.RTBFilesBaseURL),
		slog.String("ENCRYPTION_KEYS", strings.Join(ids, ",")),
		slog.Bool("ALLOW_PRIVATE_DOWNLOADS", c.AllowPrivateDownloads),
		slog.Int("WORKERS", c.Workers),
		slog.Int("SHOP_CONCURRENCY", c.ShopConcurrency),
		slog.String("RECONCILE_INTERVAL", c.ReconcileInterval.String()),
		slog.String("RTB_POLL_INTERVAL", c.RTBPollInterval.String()),
		slog.String("LOG_LEVEL", c.LogLevel.String()),
		slog.String("LOG_FORMAT", c.LogFormat),
	}
}

func redact(s string) string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// RedactURL hides the password of a URL such as a DATABASE_URL.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "redacted")
	}
	return u.String()
}
