package e2e_test

import (
	"sync/atomic"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/rtb/rtbtest"
)

// Remove The Background refuses a submission, and the write that records
// the refusal (the budget given back, the job failed for the merchant) is
// chosen as a deadlock's victim and rolled back. The write is made again:
// the job is not left marked as a submission of unknown outcome, nor
// marked to retry with no time to do it.
func TestARefusalWhoseRecordLosesADeadlockIsRecorded(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		var victims atomic.Int32
		must(t, db.Callback().Update().Before("gorm:update").Register("test:deadlock", func(tx *gorm.DB) {
			fields, ok := tx.Statement.Dest.(map[string]any)
			if ok && fields["state"] == models.JobFailed && victims.Add(1) == 1 {
				tx.AddError(&gomysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock; try restarting transaction"})
			}
		}))
		h := newHarness(t, db, harnessOptions{})
		h.rtb.SetFault(rtbtest.EndpointSubmit, rtbtest.Fault{ErrorCode: "InvalidRequest", Message: "refused", Count: 1})
		rec := h.createProduct(oneImage("deadlock"))
		waitReady(t, h, rec.ID)
		h.webhook("products/create", rec.ID)
		j := h.waitJobs("failed", func(js []models.ImageJob) bool {
			return len(js) == 1 && js[0].State == models.JobFailed
		})[0]
		if victims.Load() < 2 {
			t.Fatalf("the refusal's record was written %d times, want the deadlock's victim and its second try", victims.Load())
		}
		if j.LeaseOwner != nil || j.SubmitMonth != nil || j.SubmitStartedAt != nil || j.Attempts != 1 {
			t.Fatalf("job after the refusal: lease %v, month %v, started %v, attempts %d; want released, nothing counted, one attempt",
				j.LeaseOwner, j.SubmitMonth, j.SubmitStartedAt, j.Attempts)
		}
		if n := h.rtb.Submissions()[rtbEmail]; n != 0 {
			t.Fatalf("billed %d times for a refused image", n)
		}
	})
}
