package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/rtb"
)

// Image scopes and write modes, as the settings page names them.
const (
	ScopeAll      = "all"
	ScopeFeatured = "featured"
	ModeReplace   = "replace"
	ModeAdd       = "add"
	PublishAuto   = "auto"
	PublishReview = "review"
)

// Filters narrow which products are processed. Empty lists match everything.
type Filters struct {
	ProductTypes []string `json:"productTypes"`
	Vendors      []string `json:"vendors"`
	TagsInclude  []string `json:"tagsInclude"`
	TagsExclude  []string `json:"tagsExclude"`
}

// Settings is a shop's configuration with its secrets opened.
type Settings struct {
	ShopID        uint64
	Enabled       bool
	Credentials   rtb.Credentials
	TemplateID    string
	TemplateName  string
	TemplatePrice string
	Currency      string
	ImageScope    string
	WriteMode     string
	DeliveryHours int
	MonthlyBudget string // decimal string, "" for none
	Filters       Filters
	Publish       string // PublishAuto or PublishReview
	// ReviewReminderDays: a held image older than this many days is pointed
	// out in the dashboard, once; it is never published by itself.
	ReviewReminderDays int
	Saved              bool // false when the shop never saved settings
}

// DefaultSettings are what a new shop starts with: off, until the merchant
// enters credentials and picks a template.
func DefaultSettings(shopID uint64) Settings {
	return Settings{ShopID: shopID, ImageScope: ScopeAll, WriteMode: ModeReplace, DeliveryHours: 24, Publish: PublishAuto, ReviewReminderDays: 7,
		Filters: Filters{ProductTypes: []string{}, Vendors: []string{}, TagsInclude: []string{}, TagsExclude: []string{}}}
}

// Ready reports whether the shop can have images processed, and if not why.
func (s Settings) Ready() (bool, string) {
	switch {
	case !s.Saved || !s.Enabled:
		return false, "Processing is turned off in the app's settings."
	case s.Credentials.ContactEmail == "" || s.Credentials.ContactAPIKey == "":
		return false, "Remove The Background credentials are not set."
	case s.TemplateID == "":
		return false, "No Remove The Background template is selected."
	}
	return true, ""
}

// LoadSettings reads a shop's settings, opening the sealed keys. A shop
// that never saved settings gets DefaultSettings.
func LoadSettings(ctx context.Context, db *gorm.DB, sealer *models.Sealer, shop *models.Shop) (Settings, error) {
	var row models.Settings
	err := db.WithContext(ctx).Where("shop_id = ?", shop.ID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return DefaultSettings(shop.ID), nil
	}
	if err != nil {
		return Settings{}, fmt.Errorf("load settings of %s: %w", shop.Domain, err)
	}
	s := DefaultSettings(shop.ID)
	s.Saved = true
	s.Enabled = row.Enabled
	s.Credentials.ContactEmail = row.RTBContactEmail
	if s.Credentials.ContactAPIKey, err = sealer.Open(row.RTBContactAPIKey, keyAD(shop.Domain, "contact")); err != nil {
		return Settings{}, fmt.Errorf("settings of %s: contact API key: %w", shop.Domain, err)
	}
	if s.Credentials.DeveloperAPIKey, err = sealer.Open(row.RTBDeveloperAPIKey, keyAD(shop.Domain, "developer")); err != nil {
		return Settings{}, fmt.Errorf("settings of %s: developer API key: %w", shop.Domain, err)
	}
	s.TemplateID, s.TemplateName, s.TemplatePrice, s.Currency = row.TemplateID, row.TemplateName, row.TemplatePrice, row.TemplateCurrency
	s.ImageScope, s.WriteMode, s.DeliveryHours, s.MonthlyBudget = row.ImageScope, row.WriteMode, row.DeliveryHours, row.MonthlyBudget
	if row.Filters != "" {
		if err := json.Unmarshal([]byte(row.Filters), &s.Filters); err != nil {
			return Settings{}, fmt.Errorf("settings of %s: filters: %w", shop.Domain, err)
		}
	}
	s.Filters = s.Filters.normalized()
	if row.Publish == PublishReview {
		s.Publish = PublishReview
	}
	if row.ReviewReminderDays > 0 {
		s.ReviewReminderDays = row.ReviewReminderDays
	}
	return s, nil
}

// keyAD binds a sealed key to its shop and its role, so neither can be
// swapped for another row's value (models owns the format: rotate-keys
// re-seals these values too).
func keyAD(domain, role string) string { return models.RTBKeyAD(domain, role) }

// SaveSettings seals the keys and writes the settings row.
func SaveSettings(ctx context.Context, db *gorm.DB, sealer *models.Sealer, shop *models.Shop, s Settings) error {
	contact, err := sealer.Seal(s.Credentials.ContactAPIKey, keyAD(shop.Domain, "contact"))
	if err != nil {
		return err
	}
	developer, err := sealer.Seal(s.Credentials.DeveloperAPIKey, keyAD(shop.Domain, "developer"))
	if err != nil {
		return err
	}
	filters, _ := json.Marshal(s.Filters.normalized())
	now := time.Now().UTC()
	row := models.Settings{
		ShopID: shop.ID, Enabled: s.Enabled, RTBContactEmail: s.Credentials.ContactEmail,
		RTBContactAPIKey: contact, RTBDeveloperAPIKey: developer,
		TemplateID: s.TemplateID, TemplateName: s.TemplateName, TemplatePrice: s.TemplatePrice, TemplateCurrency: s.Currency,
		ImageScope: s.ImageScope, WriteMode: s.WriteMode, DeliveryHours: s.DeliveryHours, MonthlyBudget: s.MonthlyBudget,
		Filters: string(filters), Publish: s.Publish, ReviewReminderDays: s.ReviewReminderDays, CreatedAt: now, UpdatedAt: now,
	}
	if row.Publish == "" {
		row.Publish = PublishAuto
	}
	if row.ReviewReminderDays == 0 {
		row.ReviewReminderDays = 7
	}
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&models.Settings{}).Where("shop_id = ?", shop.ID).Select("*").Omit("shop_id", "created_at").Updates(&row)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return tx.Create(&row).Error
		}
		return nil
	})
}

func (f Filters) normalized() Filters {
	clean := func(in []string) []string {
		out := []string{}
		seen := map[string]bool{}
		for _, v := range in {
			v = strings.TrimSpace(v)
			if v != "" && !seen[strings.ToLower(v)] {
				seen[strings.ToLower(v)] = true
				out = append(out, v)
			}
		}
		return out
	}
	return Filters{clean(f.ProductTypes), clean(f.Vendors), clean(f.TagsInclude), clean(f.TagsExclude)}
}

// FieldErrors maps a settings field (JSON path) to what is wrong with it.
type FieldErrors map[string]string

func (f FieldErrors) Error() string {
	parts := make([]string, 0, len(f))
	for k, v := range f {
		parts = append(parts, k+": "+v)
	}
	return "invalid settings: " + strings.Join(parts, "; ")
}

var templateIDPattern = regexp.MustCompile(`^[0-9A-Za-z_-]{1,32}$`)

// Validate checks the settings a merchant submitted, field by field.
func (s Settings) Validate() error {
	errs := FieldErrors{}
	if s.ImageScope != ScopeAll && s.ImageScope != ScopeFeatured {
		errs["imageScope"] = `must be "all" or "featured"`
	}
	if s.WriteMode != ModeReplace && s.WriteMode != ModeAdd {
		errs["writeMode"] = `must be "replace" or "add"`
	}
	if s.Publish != PublishAuto && s.Publish != PublishReview {
		errs["publish"] = `must be "auto" or "review"`
	}
	if s.ReviewReminderDays < 1 || s.ReviewReminderDays > 90 {
		errs["reviewReminderDays"] = "must be a whole number of days from 1 to 90"
	}
	if s.DeliveryHours < 1 || s.DeliveryHours > 168 {
		errs["deliveryHours"] = "must be a whole number of hours from 1 to 168"
	}
	if s.MonthlyBudget != "" {
		if v, ok := parseMoney(s.MonthlyBudget); !ok || v < 0 {
			errs["monthlyBudget"] = `must be an amount like "50.00", or "" for no limit`
		}
	}
	if e := s.Credentials.ContactEmail; e != "" {
		if a, err := mail.ParseAddress(e); err != nil || a.Address != e {
			errs["rtb.contactEmail"] = "is not a valid email address"
		}
	}
	if s.TemplateID != "" && !templateIDPattern.MatchString(s.TemplateID) {
		errs["templateId"] = "is not a Remove The Background template id"
	}
	if s.Enabled {
		if s.Credentials.ContactEmail == "" {
			errs["rtb.contactEmail"] = "is required to turn processing on"
		}
		if s.Credentials.ContactAPIKey == "" {
			errs["rtb.contactApiKey"] = "is required to turn processing on"
		}
		if s.TemplateID == "" {
			errs["templateId"] = "pick a template to turn processing on"
		}
	}
	for name, list := range map[string][]string{"filters.productTypes": s.Filters.ProductTypes, "filters.vendors": s.Filters.Vendors,
		"filters.tagsInclude": s.Filters.TagsInclude, "filters.tagsExclude": s.Filters.TagsExclude} {
		if len(list) > 100 {
			errs[name] = "may hold at most 100 entries"
		}
		for _, v := range list {
			if len(v) > 255 {
				errs[name] = "entries may be at most 255 characters"
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// parseMoney reads a decimal amount in ten-thousandths of a unit,
// refusing more than 4 decimals or absurd sizes.
func parseMoney(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 20 {
		return 0, false
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok || strings.ContainsAny(s, "eE/") {
		return 0, false
	}
	r.Mul(r, big.NewRat(10000, 1))
	if !r.IsInt() {
		return 0, false
	}
	return r.Num().Int64(), true
}

// formatMoney prints ten-thousandths as a decimal with two places (more when needed).
func formatMoney(v int64) string {
	s := new(big.Rat).SetFrac64(v, 10000).FloatString(4)
	s = strings.TrimRight(s, "0")
	if i := strings.Index(s, "."); i >= 0 && len(s)-i-1 < 2 {
		s += strings.Repeat("0", 2-(len(s)-i-1))
	}
	return s
}
