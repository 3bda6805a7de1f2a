package sync

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"gorm.io/gorm"

	"rtbshopify/models"
	"rtbshopify/models/modelstest"
)

// TestLongFileNamesInAnyScriptAreStored: an image whose file name is longer
// than its column (255 characters) is queued with the name cut on a
// character boundary and its extension kept, so MariaDB stores the row and
// the write-back still knows the original's format.
func TestLongFileNamesInAnyScriptAreStored(t *testing.T) {
	names := map[string]string{
		"cjk":     strings.Repeat("防水ジャケット", 43) + "-正面.jpeg", // 306 characters
		"emoji":   strings.Repeat("👕", 300) + ".PNG",
		"rtl":     strings.Repeat("قميص ", 60) + ".webp",
		"ascii":   strings.Repeat("a", 300) + ".jpg",
		"no-ext":  strings.Repeat("猫", 300),
		"odd-ext": "猫." + strings.Repeat("猫", 300),
	}
	modelstest.Each(t, func(t *testing.T, db *gorm.DB) {
		p := newTestPipeline(t, db)
		shop := addShop(t, p, "a.myshopify.com", readySettings())
		for key, name := range names {
			media := image("gid://shopify/MediaImage/"+key, 1)
			media.PreviewURL = "https://cdn.shopify.com/s/files/1/0001/files/" + url.PathEscape(name) + "?v=1"
			enqueue(t, p, shop, webhookOf("gid://shopify/Product/"+key, media))
			var j models.ImageJob
			if err := db.Where("media_id = ?", media.ID).Take(&j).Error; err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			got := j.OriginalFilename
			if !utf8.ValidString(got) || utf8.RuneCountInString(got) > 255 {
				t.Errorf("%s: file name stored as %d characters, valid UTF-8 %v", key, utf8.RuneCountInString(got), utf8.ValidString(got))
			}
			ext := ""
			if i := strings.LastIndexByte(name, '.'); i >= 0 && utf8.RuneCountInString(name[i:]) <= 10 {
				ext = name[i:]
			}
			if !strings.HasSuffix(got, ext) {
				t.Errorf("%s: file name …%q lost its extension %q", key, tail(got), ext)
			}
			if stem := strings.TrimSuffix(strings.TrimSuffix(got, ext), "…"); !strings.HasPrefix(name, stem) {
				t.Errorf("%s: file name stored as something that is not its beginning: …%q", key, tail(got))
			}
		}
	})
}

// tail is the end of a long name, enough to read in a failure.
func tail(s string) string {
	r := []rune(s)
	return string(r[max(0, len(r)-20):])
}
