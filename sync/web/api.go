package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/rtb"
	"rtbshopify/shopify"
	imgsync "rtbshopify/sync"
)

// API serves the embedded admin's JSON routes (mounted under /api behind
// shopify's RequireSession): settings, templates, jobs and the backfill.
type API struct {
	Pipeline *imgsync.Pipeline
	DB       *gorm.DB
	Sealer   *models.Sealer
	RTB      imgsync.RTB
	Log      *slog.Logger
}

const (
	// maxSettingsBody caps PUT /settings; real settings are a few KiB.
	maxSettingsBody = 64 << 10
	// rtbTimeout bounds a live call to Remove The Background made while
	// the merchant waits.
	rtbTimeout = 20 * time.Second
)

// Register mounts the routes on r (main mounts it at /api).
func (a *API) Register(r fiber.Router) {
	r.Get("/settings", a.getSettings)
	r.Put("/settings", a.putSettings)
	r.Get("/templates", a.getTemplates)
	r.Get("/jobs", a.listJobs)
	r.Get("/jobs/:id", a.getJob)
	r.Post("/jobs/:id/retry", a.retryJob)
	r.Post("/jobs/:id/revert", a.revertJob)
	r.Post("/jobs/:id/approve", a.approveJob)
	r.Post("/jobs/:id/reject", a.rejectJob)
	r.Post("/jobs/:id/send-again", a.sendAgain)
	r.Post("/jobs/approve", a.approveJobs)
	r.Post("/jobs/reject", a.rejectJobs)
	r.Post("/review/reminder", a.dismissReviewReminder)
	r.Post("/backfill", a.startBackfill)
	r.Get("/backfill", a.backfillStatus)
	r.Get("/backfill/estimate", a.backfillEstimate)
	r.Get("/spend", a.spendByDay)
	r.Get("/reconciliation", a.reconciliation)
}

func (a *API) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

// shopOf returns the session's shop; RequireSession guarantees one.
func shopOf(c *fiber.Ctx) (*models.Shop, error) {
	s := shopify.ShopFrom(c)
	if s == nil {
		return nil, errors.New("api route mounted without RequireSession")
	}
	return s, nil
}

// send answers JSON that must not be cached: it carries a shop's data.
func send(c *fiber.Ctx, status int, v any) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(status).JSON(v)
}

// settingsJSON is the contract's Settings JSON plus read-only extras.
type settingsJSON struct {
	Enabled       bool            `json:"enabled"`
	RTB           rtbJSON         `json:"rtb"`
	TemplateID    string          `json:"templateId"`
	ImageScope    string          `json:"imageScope"`
	WriteMode     string          `json:"writeMode"`
	DeliveryHours int             `json:"deliveryHours"`
	MonthlyBudget string          `json:"monthlyBudget"`
	Filters       imgsync.Filters `json:"filters"`
	Publish       string          `json:"publish"`
	// ReviewReminderDays: held images older than this are pointed out once.
	ReviewReminderDays int `json:"reviewReminderDays"`

	// Read-only: ignored when sent back.
	TemplateName   string `json:"templateName"`
	TemplatePrice  string `json:"templatePrice"`
	CurrencyID     string `json:"currencyId"`
	SpentThisMonth string `json:"spentThisMonth"`
	Ready          bool   `json:"ready"`
	ReadyMessage   string `json:"readyMessage"`
}

type rtbInput struct {
	ContactEmail    *string `json:"contactEmail"`
	ContactAPIKey   *string `json:"contactApiKey"`
	DeveloperAPIKey *string `json:"developerApiKey"`
}

type rtbJSON struct {
	ContactEmail    string `json:"contactEmail"`
	ContactAPIKey   string `json:"contactApiKey"`
	DeveloperAPIKey string `json:"developerApiKey"`
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func (a *API) settingsView(ctx context.Context, s imgsync.Settings) (settingsJSON, error) {
	spent, err := a.spentThisMonth(ctx, s.ShopID)
	if err != nil {
		return settingsJSON{}, err
	}
	ready, why := s.Ready()
	return settingsJSON{
		Enabled: s.Enabled,
		RTB: rtbJSON{ContactEmail: s.Credentials.ContactEmail, ContactAPIKey: rtb.MaskKey(s.Credentials.ContactAPIKey),
			DeveloperAPIKey: rtb.MaskKey(s.Credentials.DeveloperAPIKey)},
		TemplateID: s.TemplateID, ImageScope: s.ImageScope, WriteMode: s.WriteMode,
		DeliveryHours: s.DeliveryHours, MonthlyBudget: s.MonthlyBudget,
		Filters: imgsync.Filters{ProductTypes: nonNil(s.Filters.ProductTypes), Vendors: nonNil(s.Filters.Vendors),
			TagsInclude: nonNil(s.Filters.TagsInclude), TagsExclude: nonNil(s.Filters.TagsExclude)},
		Publish: s.Publish, ReviewReminderDays: s.ReviewReminderDays,
		TemplateName: s.TemplateName, TemplatePrice: s.TemplatePrice, CurrencyID: s.Currency,
		SpentThisMonth: spent, Ready: ready, ReadyMessage: why,
	}, nil
}

// spentThisMonth is what the budget check counts for this month.
func (a *API) spentThisMonth(ctx context.Context, shopID uint64) (string, error) {
	return a.Pipeline.MonthSpend(ctx, shopID)
}

// settingsOf loads the settings of the request's shop.
func (a *API) settingsOf(c *fiber.Ctx) (*models.Shop, imgsync.Settings, error) {
	shop, err := shopOf(c)
	if err != nil {
		return nil, imgsync.Settings{}, err
	}
	s, err := imgsync.LoadSettings(c.UserContext(), a.DB, a.Sealer, shop)
	return shop, s, err
}

func (a *API) getSettings(c *fiber.Ctx) error {
	ctx := c.UserContext()
	_, s, err := a.settingsOf(c)
	if err != nil {
		return err
	}
	v, err := a.settingsView(ctx, s)
	if err != nil {
		return err
	}
	return send(c, fiber.StatusOK, v)
}

// settingsInput is a PUT body. Fields left out keep their stored values;
// the read-only fields GET adds are accepted and ignored, so a client may
// send back what it read; any other field is refused.
type settingsInput struct {
	Enabled       *bool     `json:"enabled"`
	RTB           *rtbInput `json:"rtb"`
	TemplateID    *string   `json:"templateId"`
	ImageScope    *string   `json:"imageScope"`
	WriteMode     *string   `json:"writeMode"`
	DeliveryHours *int      `json:"deliveryHours"`
	MonthlyBudget *string   `json:"monthlyBudget"`
	Publish       *string   `json:"publish"`
	ReviewDays    *int      `json:"reviewReminderDays"`
	Filters       *struct {
		ProductTypes *[]string `json:"productTypes"`
		Vendors      *[]string `json:"vendors"`
		TagsInclude  *[]string `json:"tagsInclude"`
		TagsExclude  *[]string `json:"tagsExclude"`
	} `json:"filters"`

	TemplateName   json.RawMessage `json:"templateName"`
	TemplatePrice  json.RawMessage `json:"templatePrice"`
	CurrencyID     json.RawMessage `json:"currencyId"`
	SpentThisMonth json.RawMessage `json:"spentThisMonth"`
	Ready          json.RawMessage `json:"ready"`
	ReadyMessage   json.RawMessage `json:"readyMessage"`
}

// decodeSettings reads a PUT body strictly: one JSON object, known
// fields only. A value of the wrong type is a field error, not a 400.
func decodeSettings(body []byte) (settingsInput, error) {
	var in settingsInput
	if len(body) > maxSettingsBody {
		return in, Errorf(fiber.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("The settings must be at most %d KiB of JSON.", maxSettingsBody>>10))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(&in)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("data after the JSON object")
	}
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
		return in, nil
	case errors.As(err, &te) && te.Field != "":
		want := "must be a " + jsonKind(te.Type.Kind().String())
		if strings.HasPrefix(te.Field, "filters.") {
			want = "must be a list of strings"
		}
		return in, invalid(imgsync.FieldErrors{te.Field: want})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return in, Errorf(fiber.StatusBadRequest, "bad_request", "The settings have an unknown field "+strings.TrimPrefix(err.Error(), "json: unknown field ")+".")
	}
	return in, Errorf(fiber.StatusBadRequest, "bad_request", "The body must be one JSON object with the settings.")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "bool":
		return "boolean (true or false)"
	case "int", "int64":
		return "whole number"
	case "string":
		return "string"
	case "slice":
		return "list of strings"
	}
	return "JSON object"
}

// merge applies a PUT body over the stored settings: a missing field keeps
// its stored value, except publish (missing means auto). A masked, missing
// or empty API key keeps the stored key.
func merge(s imgsync.Settings, in settingsInput) imgsync.Settings {
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = strings.TrimSpace(*src)
		}
	}
	if in.Enabled != nil {
		s.Enabled = *in.Enabled
	}
	if in.RTB != nil {
		set(&s.Credentials.ContactEmail, in.RTB.ContactEmail)
		key := func(dst *string, v *string) {
			if v == nil {
				return
			}
			if k := strings.TrimSpace(*v); k != "" && !strings.HasPrefix(k, rtb.MaskPrefix) {
				*dst = k
			}
		}
		key(&s.Credentials.ContactAPIKey, in.RTB.ContactAPIKey)
		key(&s.Credentials.DeveloperAPIKey, in.RTB.DeveloperAPIKey)
	}
	set(&s.TemplateID, in.TemplateID)
	set(&s.ImageScope, in.ImageScope)
	set(&s.WriteMode, in.WriteMode)
	set(&s.MonthlyBudget, in.MonthlyBudget)
	// A missing (or empty) publish means auto, as the contract says: unlike
	// the other fields, it does not keep the stored value, so a client that
	// knows nothing of review never leaves a shop holding its images.
	s.Publish = imgsync.PublishAuto
	set(&s.Publish, in.Publish)
	if s.Publish == "" {
		s.Publish = imgsync.PublishAuto
	}
	if in.ReviewDays != nil {
		s.ReviewReminderDays = *in.ReviewDays
	}
	if in.DeliveryHours != nil {
		s.DeliveryHours = *in.DeliveryHours
	}
	if f := in.Filters; f != nil {
		for _, p := range []struct {
			dst *[]string
			src *[]string
		}{{&s.Filters.ProductTypes, f.ProductTypes}, {&s.Filters.Vendors, f.Vendors},
			{&s.Filters.TagsInclude, f.TagsInclude}, {&s.Filters.TagsExclude, f.TagsExclude}} {
			if p.src != nil {
				*p.dst = nonNil(*p.src)
			}
		}
	}
	return s
}

// invalid answers 422 with a message per field.
func invalid(fields imgsync.FieldErrors) *Error {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " " + fields[k]
	}
	return &Error{Status: fiber.StatusUnprocessableEntity, Code: "invalid_settings",
		Message: "Check these settings: " + strings.Join(parts, "; ") + ".", Fields: fields}
}

func (a *API) putSettings(c *fiber.Ctx) error {
	shop, err := shopOf(c)
	if err != nil {
		return err
	}
	// BodyRaw: a compressed body is not inflated without a limit; it is
	// simply not JSON.
	in, err := decodeSettings(c.BodyRaw())
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	stored, err := imgsync.LoadSettings(ctx, a.DB, a.Sealer, shop)
	if err != nil {
		return err
	}
	s := merge(stored, in)

	fields := imgsync.FieldErrors{}
	var fe imgsync.FieldErrors
	if err := s.Validate(); errors.As(err, &fe) {
		fields = fe
	} else if err != nil {
		return err
	}
	cred := s.Credentials
	switch {
	case cred.ContactEmail != "" && cred.ContactAPIKey == "":
		setOnce(fields, "rtb.contactApiKey", "is required with the contact email")
	case cred.ContactEmail == "" && cred.ContactAPIKey != "":
		setOnce(fields, "rtb.contactEmail", "is required with the contact API key")
	case cred.ContactEmail == "" && s.TemplateID != "":
		setOnce(fields, "templateId", "needs Remove The Background credentials to be checked; enter them first")
	}
	if len(fields) > 0 {
		return invalid(fields)
	}

	if cred.ContactEmail != "" {
		tpls, err := a.templates(ctx, cred)
		if err != nil {
			var e *Error
			switch {
			case errors.As(err, &e) && e.Status == fiber.StatusUnprocessableEntity:
				refused := invalid(imgsync.FieldErrors{"rtb.contactApiKey": "was refused by Remove The Background: check the contact email and API key in your Remove The Background account"})
				refused.Message = "Remove The Background refused the contact email and API key; the settings were not saved."
				return refused
			case errors.As(err, &e):
				return &Error{Status: e.Status, Code: e.Code, Message: e.Message + " Your settings were not saved."}
			}
			return err
		}
		s.TemplateName, s.TemplatePrice, s.Currency = "", "", ""
		if s.TemplateID != "" {
			t, ok := findTemplate(tpls, s.TemplateID)
			if !ok {
				return invalid(imgsync.FieldErrors{"templateId": "is not one of your Remove The Background templates; pick one from the list"})
			}
			s.TemplateName, s.TemplatePrice, s.Currency = t.Name, t.Price, t.CurrencyID
		}
	}

	if err := imgsync.SaveSettings(ctx, a.DB, a.Sealer, shop, s); err != nil {
		return fmt.Errorf("save settings of %s: %w", shop.Domain, err)
	}
	// The settings are saved; jobs held by the budget are also resumed by
	// the daily cron, so a failure here is logged, not answered.
	if err := a.Pipeline.SettingsChanged(ctx, shop.ID); err != nil {
		a.log().ErrorContext(ctx, "resume jobs after settings change", "shop", shop.Domain, "err", err)
	}
	saved, err := imgsync.LoadSettings(ctx, a.DB, a.Sealer, shop)
	if err != nil {
		return err
	}
	v, err := a.settingsView(ctx, saved)
	if err != nil {
		return err
	}
	return send(c, fiber.StatusOK, v)
}

func setOnce(f imgsync.FieldErrors, k, v string) {
	if _, ok := f[k]; !ok {
		f[k] = v
	}
}

func findTemplate(tpls []rtb.Template, id string) (rtb.Template, bool) {
	for _, t := range tpls {
		if t.ID == id {
			return t, true
		}
	}
	return rtb.Template{}, false
}

// templates asks Remove The Background for the account's templates and
// turns failures into answers: refused credentials 422, unreachable 503.
func (a *API) templates(ctx context.Context, cred rtb.Credentials) ([]rtb.Template, error) {
	ctx, cancel := context.WithTimeout(ctx, rtbTimeout)
	defer cancel()
	tpls, err := a.RTB.Templates(ctx, cred)
	var ae *rtb.APIError
	switch {
	case err == nil:
		return tpls, nil
	case rtb.IsCredentialsError(err) || errors.As(err, &ae):
		return nil, Errorf(fiber.StatusUnprocessableEntity, "rtb_credentials_refused",
			"Remove The Background refused the saved credentials. Check the contact email and API key in the settings.")
	case rtb.IsRetryable(err):
		a.log().WarnContext(ctx, "remove the background unreachable", "err", err)
		return nil, Errorf(fiber.StatusServiceUnavailable, "rtb_unavailable",
			"Could not reach Remove The Background. Try again in a moment.")
	}
	a.log().ErrorContext(ctx, "remove the background answered unexpectedly", "err", err)
	return nil, Errorf(fiber.StatusBadGateway, "rtb_unavailable",
		"Remove The Background answered unexpectedly. Try again later.")
}

type templateJSON struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Price      string `json:"price"`
	CurrencyID string `json:"currencyId"`
}

func (a *API) getTemplates(c *fiber.Ctx) error {
	ctx := c.UserContext()
	_, s, err := a.settingsOf(c)
	if err != nil {
		return err
	}
	if s.Credentials.ContactEmail == "" || s.Credentials.ContactAPIKey == "" {
		return Errorf(fiber.StatusConflict, "credentials_missing",
			"Save your Remove The Background contact email and API key in the settings first.")
	}
	tpls, err := a.templates(ctx, s.Credentials)
	if err != nil {
		return err
	}
	out := make([]templateJSON, len(tpls))
	for i, t := range tpls {
		out[i] = templateJSON{ID: t.ID, Name: t.Name, Price: t.Price, CurrencyID: t.CurrencyID}
	}
	return send(c, fiber.StatusOK, fiber.Map{"templates": out})
}
