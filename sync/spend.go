package sync

import (
	"context"
	"fmt"
	"time"

	"rtbshopify/models"
)

// DaySpend is one day of the month: what submissions cost that day and how
// many images were written back to products.
type DaySpend struct {
	Date      string // YYYY-MM-DD, UTC
	Spend     string
	Processed int
}

// MonthByDay returns this month's days up to today (UTC), each with its
// spend (the budget's view: submissions by the day they were sent, kept
// charges of resubmitted ones by the day they were kept) and the images
// written back that day.
func (p *Pipeline) MonthByDay(ctx context.Context, shopID uint64) ([]DaySpend, error) {
	now := p.now().UTC()
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	month := now.Format("2006-01")
	days := make([]DaySpend, now.Day())
	spend := make([]int64, now.Day())
	for i := range days {
		days[i].Date = first.AddDate(0, 0, i).Format("2006-01-02")
	}
	day := func(t time.Time) int {
		d := int(t.UTC().Sub(first) / (24 * time.Hour))
		return min(max(d, 0), len(days)-1)
	}
	var subs []struct {
		SubmitStartedAt *time.Time
		Price           string
	}
	db := p.o.DB.WithContext(ctx)
	if err := db.Model(&models.ImageJob{}).Select("submit_started_at", "price").
		Where("shop_id = ? AND submit_month = ?", shopID, month).Find(&subs).Error; err != nil {
		return nil, fmt.Errorf("spend by day: %w", err)
	}
	var kept []models.JobCharge
	if err := db.Where("shop_id = ? AND month = ?", shopID, month).Find(&kept).Error; err != nil {
		return nil, fmt.Errorf("spend by day: kept charges: %w", err)
	}
	for _, s := range subs {
		v, _ := parseMoney(s.Price)
		at := first
		if s.SubmitStartedAt != nil {
			at = *s.SubmitStartedAt
		}
		spend[day(at)] += v
	}
	for _, k := range kept {
		v, _ := parseMoney(k.Price)
		spend[day(k.CreatedAt)] += v
	}
	var done []time.Time
	if err := db.Model(&models.JobEvent{}).Where("shop_id = ? AND to_state = ? AND created_at >= ?", shopID, models.JobDone, first).
		Pluck("created_at", &done).Error; err != nil {
		return nil, fmt.Errorf("images processed by day: %w", err)
	}
	for _, t := range done {
		days[day(t)].Processed++
	}
	for i := range days {
		days[i].Spend = formatMoney(spend[i])
	}
	return days, nil
}
