package deploy

import (
	"fmt"
	"os"
	"testing"
	"time"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
)

// TestReplicaKilledAfterSubmitting: a replica sends an image to Remove The
// Background, the service accepts it, and the replica dies before the
// answer (the ticket) reaches it. The image must not be paid for twice:
// the job's outcome is unknown, so no replica resubmits it, and the
// service's callback, arriving at a survivor, completes it.
//
// The callback adopts the ticket once the dead replica's lease has been
// rescued (the rescue_leases cron, every minute); the service's editors
// take hours, so its callback comes long after that. The fake here takes
// 75 s, past the lease and the first rescue, so the test runs with
// -replicas.long only.
func TestReplicaKilledAfterSubmitting(t *testing.T) {
	if os.Getenv(modelstest.MySQLEnv) == "" {
		t.Skip("needs " + modelstest.MySQLEnv + ": several processes share one MySQL/MariaDB database")
	}
	if testing.Short() || !*longReplicas {
		t.Skip("takes two minutes; run with -replicas.long")
	}
	c := newCluster(t, modelstest.NewURL(t, "mysql"), clusterOptions{
		rtbNew: 25 * time.Second, rtbProduction: 25 * time.Second, rtbQuality: 25 * time.Second,
	})
	c.start(2)
	c.install()
	c.holdSubmit.Store(true)
	ps := createProducts(t, c, 0, 3)
	sendWebhooks(t, c, ps, 0)
	var held heldCall
	select {
	case held = <-c.held:
	case <-time.After(60 * time.Second):
		t.Fatalf("no submission within 60 s: %s", states(c.jobs()))
	}
	c.kill(held.node)
	killedAt := time.Now()
	held.node.releaseHeld()
	atKill := states(c.jobs())

	var settled time.Time
	for deadline := time.Now().Add(180 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		jobs := c.jobs()
		done := 0
		for _, j := range jobs {
			if j.State == models.JobDone {
				done++
			}
			if j.State == models.JobFailed {
				t.Fatalf("job %d failed: %s", j.ID, j.Error)
			}
		}
		if len(jobs) == imagesOf(ps) && done == len(jobs) {
			settled = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled 180 s after the kill: %s\n%s", states(jobs), describeJobs(jobs))
		}
	}
	jobs := c.jobs()
	checkSubmittedOnce(t, c, jobs)
	checkGalleries(t, c, ps, jobs)
	report := fmt.Sprintf("killed after submitting: replica %d died with its %s (jobs then: %s); %d jobs done, %d submissions; settled %.1fs after the kill",
		held.node.n, held.op, atKill, len(jobs), len(c.rtb.Jobs()), settled.Sub(killedAt).Seconds())
	t.Log(report)
	fmt.Println(report)
}
