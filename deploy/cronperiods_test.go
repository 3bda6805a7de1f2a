package deploy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
)

// recorder collects what a check reports; Fatalf ends the check.
type recorder struct{ errs []string }

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	panic(r)
}

// TestCronPeriodCheckFailsOnAMissedOrUnfinishedPeriod feeds the replicas
// test's cron check the runs of three replicas (A killed at 07:00:12, B
// and C surviving) and wants it to pass the run as it should go and to
// fail on each way a period can go wrong.
func TestCronPeriodCheckFailsOnAMissedOrUnfinishedPeriod(t *testing.T) {
	base := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	killedAt := base.Add(12 * time.Second)
	type run struct {
		at       int // seconds after base
		owner    string
		finished bool
		err      string
	}
	good := []run{{0, "A", true, ""}, {5, "B", true, ""}, {10, "A", false, ""}, {15, "C", true, ""}, {20, "B", true, ""}, {25, "C", true, "context canceled"}}
	for _, tc := range []struct {
		name string
		runs []run
		want string // in a reported error; "" for none
	}{
		{"as it should go", good, ""},
		{"a period no replica ran", append(append([]run{}, good[:3]...), good[4:]...), "no replica ran the period 07:00:15"},
		{"a survivor's run unfinished", append(append([]run{}, good[:5]...), run{25, "C", false, ""}), "did not finish"},
		{"two replicas that ran nothing after the kill left runs unfinished", append([]run{good[0], {5, "D", false, ""}}, good[2:]...), "only the killed one may leave runs unfinished"},
		{"a run ended in error", append(append([]run{}, good[:5]...), run{25, "C", true, "deadlock found"}), `error "deadlock found"`},
		{"no period after the kill", good[:3], "ran 0 periods after the kill"},
		{"a period off the interval", append(append([]run{}, good...), run{32, "B", true, ""}), "does not start on a multiple of 5s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
				for _, r := range tc.runs {
					at := base.Add(time.Duration(r.at) * time.Second)
					cr := models.CronRun{Name: "reconcile", Period: at.Truncate(time.Second).Format(time.RFC3339), Owner: r.owner, StartedAt: at.Add(100 * time.Millisecond), Error: r.err}
					if r.finished {
						end := at.Add(time.Second)
						cr.FinishedAt = &end
					}
					if err := db.Create(&cr).Error; err != nil {
						t.Fatal(err)
					}
				}
				rec := &recorder{}
				func() {
					defer func() {
						if p := recover(); p != nil && p != rec {
							panic(p)
						}
					}()
					checkCronPeriods(rec, db, killedAt, map[string]time.Duration{"reconcile": 5 * time.Second})
				}()
				found := tc.want == "" && len(rec.errs) == 0
				for _, e := range rec.errs {
					found = found || tc.want != "" && strings.Contains(e, tc.want)
				}
				if !found {
					t.Errorf("want %q, the check reported %q", tc.want, rec.errs)
				}
			})
		})
	}
}
