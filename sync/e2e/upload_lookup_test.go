package e2e_test

import (
	"database/sql/driver"
	"image/color"
	"sync/atomic"
	"testing"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
	"rtbshopify/shopify/shopifytest"
)

// A write-back's first upload looks up no file name (there is none to
// find). When the record of the file it made is lost (the database
// connection drops as the job is updated), the next attempt looks the name
// up first and takes that file: nothing is uploaded or made twice.
func TestAnUploadLooksForItsFileOnlyAfterAnAttemptThatMayHaveMadeIt(t *testing.T) {
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		var lost atomic.Int32
		err := db.Callback().Update().Before("gorm:update").Register("test:lose-result-record", func(tx *gorm.DB) {
			if f, ok := tx.Statement.Dest.(map[string]any); ok && f["result_media_id"] != nil && f["result_media_id"] != "" && lost.Add(1) == 1 {
				tx.AddError(driver.ErrBadConn)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		h := newHarness(t, db, harnessOptions{writeMode: "add"})
		rec := h.createProduct(shopifytest.NewProduct{Title: "Mug", Images: []shopifytest.NewImage{
			{Filename: "mug.jpg", Data: photo("jpg", color.RGBA{200, 180, 90, 255}), Alt: "mug"}}})
		waitReadyIn(t, h, shopDomain, rec.ID)
		h.webhook("products/create", rec.ID)
		j := h.waitJobs("the image written back", allIn(1, models.JobDone))[0]
		if lost.Load() < 2 {
			t.Fatalf("the record of the processed file was written %d times, want a lost one and another", lost.Load())
		}
		var ops []string
		for _, r := range h.store.Requests() {
			switch r.Operation {
			case "StagedUploadsCreate", "FileCreate", "FindFile":
				ops = append(ops, r.Operation)
			}
		}
		// The first attempt stages and creates without a lookup; the second
		// looks up and finds the file.
		want := []string{"StagedUploadsCreate", "FileCreate", "FindFile"}
		if len(ops) != len(want) || ops[0] != want[0] || ops[1] != want[1] || ops[2] != want[2] {
			t.Fatalf("file operations %v, want %v", ops, want)
		}
		after := h.store.Product(shopDomain, rec.ID)
		if len(after.Media) != 2 || after.Media[1].ID != j.ResultMediaID {
			t.Fatalf("product media %+v, want the original and the processed image %s", after.Media, j.ResultMediaID)
		}
		processed := 0
		for _, f := range after.Files {
			if f.ID == j.ResultMediaID {
				processed++
			}
		}
		if len(after.Files) != 2 || processed != 1 {
			t.Fatalf("files %+v, want the original and one processed file", after.Files)
		}
	})
}
