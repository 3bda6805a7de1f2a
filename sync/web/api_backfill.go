package web

import (
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	imgsync "rtbshopify/sync"
)

// maxBackfillBody caps POST /backfill: one small JSON object.
const maxBackfillBody = 4 << 10

// estimateJSON is GET /api/backfill/estimate.
type estimateJSON struct {
	Images     int    `json:"images"`
	Price      string `json:"price"`
	Amount     string `json:"amount"`
	CurrencyID string `json:"currencyId"`
	BudgetLeft string `json:"budgetLeft"`
}

func estimateView(e imgsync.Estimate) estimateJSON {
	return estimateJSON{Images: e.Images, Price: e.Price, Amount: e.Amount, CurrencyID: e.Currency, BudgetLeft: e.BudgetLeft}
}

// estimate counts what a backfill would submit now; a shop that is not set
// up has nothing to estimate.
func (a *API) estimate(c *fiber.Ctx) (uint64, imgsync.Estimate, error) {
	shop, s, err := a.settingsOf(c)
	if err != nil {
		return 0, imgsync.Estimate{}, err
	}
	if ok, why := s.Ready(); !ok {
		return 0, imgsync.Estimate{}, Errorf(fiber.StatusConflict, "not_ready", why+" Finish the settings before processing the catalogue.")
	}
	e, err := a.Pipeline.EstimateBackfill(c.UserContext(), shop)
	if err != nil {
		return 0, imgsync.Estimate{}, err
	}
	return shop.ID, e, nil
}

func (a *API) backfillEstimate(c *fiber.Ctx) error {
	_, e, err := a.estimate(c)
	if err != nil {
		return err
	}
	return send(c, fiber.StatusOK, estimateView(e))
}

// confirmError is the 422 of a missing or too small confirmAmount.
func confirmError(message string) *Error {
	return &Error{Status: fiber.StatusUnprocessableEntity, Code: "invalid_confirm_amount",
		Message: message, Fields: map[string]string{"confirmAmount": message}}
}

// startBackfill starts the backfill once the merchant confirmed at least
// what it would cost now; the amount confirmed is the most it may spend.
func (a *API) startBackfill(c *fiber.Ctx) error {
	var in struct {
		ConfirmAmount *string `json:"confirmAmount"`
	}
	if err := decodeOptional(c, maxBackfillBody, &in, confirmError(`Send {"confirmAmount": "…"}, the amount shown by the estimate, as a decimal string.`)); err != nil {
		return err
	}
	shop, err := shopOf(c)
	if err != nil {
		return err
	}
	// A running backfill is answered as it is: it already has its cap.
	if b, err := a.Pipeline.BackfillStatus(c.UserContext(), shop.ID); err == nil && b.State == imgsync.BackfillRunning {
		return send(c, fiber.StatusAccepted, backfillView(b))
	}
	id, e, err := a.estimate(c)
	if err != nil {
		return err
	}
	if in.ConfirmAmount == nil {
		return confirmError("Confirm the amount first: processing the catalogue now costs " + e.Amount + " (" +
			strconv.Itoa(e.Images) + " images). Send it as confirmAmount.")
	}
	covers, ok := e.AmountCovers(*in.ConfirmAmount)
	if !ok {
		return confirmError("confirmAmount must be a decimal amount such as " + e.Amount + ".")
	}
	if !covers {
		return confirmError("confirmAmount " + *in.ConfirmAmount + " is below what processing the catalogue now costs (" +
			e.Amount + " for " + strconv.Itoa(e.Images) + " images). Check the estimate again and confirm its amount.")
	}
	b, err := a.Pipeline.StartBackfill(c.UserContext(), id, strings.TrimSpace(*in.ConfirmAmount))
	if err != nil {
		return err
	}
	return send(c, fiber.StatusAccepted, backfillView(b))
}

// dayJSON is one day of GET /api/spend.
type dayJSON struct {
	Date      string `json:"date"`
	Spend     string `json:"spend"`
	Processed int    `json:"processed"`
}

// spendByDay is GET /api/spend: this month's spend and images processed,
// day by day, for the dashboard's chart.
func (a *API) spendByDay(c *fiber.Ctx) error {
	shop, s, err := a.settingsOf(c)
	if err != nil {
		return err
	}
	days, err := a.Pipeline.MonthByDay(c.UserContext(), shop.ID)
	if err != nil {
		return err
	}
	out := make([]dayJSON, len(days))
	for i, d := range days {
		out[i] = dayJSON{Date: d.Date, Spend: d.Spend, Processed: d.Processed}
	}
	return send(c, fiber.StatusOK, fiber.Map{"currencyId": s.Currency, "days": out})
}
