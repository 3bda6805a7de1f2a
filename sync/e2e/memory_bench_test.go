package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"rtbshopify/models"
	"rtbshopify/rtb"
	"rtbshopify/rtb/rtbtest"
	"rtbshopify/shopify/shopifytest"
)

// BenchmarkWriteBackMemory measures the app's peak memory while 8 workers
// write back images at Shopify's limits (about 20 MB and 20 megapixels
// each). The app runs as its own `serve` process, with the fake store and
// the fake Remove The Background in this process, so the figure is the
// app's alone: its peak resident set (VmHWM) once every image is written
// back. Two cases: the image is delivered in the original's format
// (swapped in place as it came, never decoded) and delivered as PNG for
// JPEG originals (decoded and converted to JPEG).
// BENCH_MEMORY_IMAGES (16; 4 with BENCH_SHORT) images per case,
// BENCH_MEMORY_SIDE (4472 px; 2236, about 5 MP, with BENCH_SHORT) square.
func BenchmarkWriteBackMemory(b *testing.B) {
	images, side := 16, rtb.MaxImageSide
	if os.Getenv("BENCH_SHORT") != "" {
		images, side = 4, rtb.MaxImageSide/2
	}
	images = benchSize(b, "BENCH_MEMORY_IMAGES", images)
	side = benchSize(b, "BENCH_MEMORY_SIDE", side)
	const workers = 8
	bin := buildServe(b)
	original := noisyJPEG(b, side, 1)
	cases := []struct {
		name   string
		result func() rtbtest.Result
		why    string // the write-back's reason, as the job's events say it
	}{
		{"delivered as JPEG", func() rtbtest.Result { return rtbtest.Result{Data: noisyJPEG(b, side, 2), ContentType: "image/jpeg"} },
			"delivered as JPEG like the original"},
		{"delivered as PNG", func() rtbtest.Result { return rtbtest.Result{Data: noisyPNG(b, side), ContentType: "image/png"} },
			"converted to JPEG"},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			result := tc.result()
			for range b.N {
				db := benchDB(b)
				app := startServe(b, bin, db.URL, workers, result)
				products := make([]string, images)
				for i := range products {
					rec, err := app.store.CreateProduct(shopDomain, shopifytest.NewProduct{Title: fmt.Sprint("Poster ", i),
						Images: []shopifytest.NewImage{{Filename: fmt.Sprintf("poster-%d.jpg", i), Data: original, Alt: "A poster"}}})
					if err != nil {
						b.Fatal(err)
					}
					products[i] = rec.ID
				}
				for _, id := range products {
					for deadline := time.Now().Add(time.Minute); app.store.Product(shopDomain, id).Media[0].Status != "READY"; time.Sleep(20 * time.Millisecond) {
						if time.Now().After(deadline) {
							b.Fatal("the originals never became READY")
						}
					}
				}
				start := time.Now()
				for _, id := range products {
					resp, err := app.store.SendWebhook(context.Background(), app.url+"/webhooks", shopDomain, "products/create", app.store.ProductWebhookPayload(shopDomain, id))
					if err != nil {
						b.Fatal(err)
					}
					resp.Body.Close()
				}
				for deadline := time.Now().Add(15 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
					var jobs []models.ImageJob
					db.DB.Find(&jobs)
					done := 0
					for _, j := range jobs {
						switch j.State {
						case models.JobDone:
							done++
						case models.JobFailed:
							b.Fatalf("job %d failed: %s", j.ID, j.Error)
						}
					}
					if done == images {
						break
					}
					if time.Now().After(deadline) {
						b.Fatalf("%d of %d images written back in 15 minutes\n%s", done, images, logTail(app.log))
					}
				}
				elapsed := time.Since(start)
				peak := app.peakMB(b)
				// Each image took the path the case is about, and the product
				// shows the processed bytes in place of the original's.
				var why int64
				db.DB.Model(&models.JobEvent{}).Where("message LIKE ?", "%"+tc.why+"%").Count(&why)
				if int(why) != images {
					b.Fatalf("%d of %d write-backs say %q", why, images, tc.why)
				}
				for _, id := range products {
					m := app.store.Product(shopDomain, id).Media
					if len(m) != 1 || bytes.Equal(m[0].Data, original) || m[0].MimeType != "image/jpeg" {
						b.Fatalf("product %s was not written back in place", id)
					}
				}
				app.stop(b)
				mp := float64(side*side) / 1e6
				b.ReportMetric(peak, "peak-RSS-MB")
				b.Logf("%s, %s: %d images of %d×%d (%.1f MP, %.1f MB delivered), %d workers: peak RSS %.0f MB, %s",
					db.Name, tc.name, images, side, side, mp, float64(len(result.Data))/1e6, workers, peak, elapsed.Round(time.Millisecond))
				record(b, fmt.Sprintf("%d images of %.0f MP, %s, %d workers", images, mp, tc.name, workers), db.Name,
					fmt.Sprintf("%.1f MB delivered per image", float64(len(result.Data))/1e6),
					fig("peak RSS", peak, "MB"), fig("images", float64(images), ""), fig("time", elapsed.Seconds(), "s"))
			}
		})
	}
}

// noisyJPEG is a side×side photo that fine noise keeps from compressing:
// at 4472 px it is just under 20 MB, Shopify's limit.
func noisyJPEG(b *testing.B, side int, seed uint64) []byte {
	b.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, noise(side, 50, seed), &jpeg.Options{Quality: 97}); err != nil {
		b.Fatal(err)
	}
	checkLimits(b, buf.Bytes())
	return buf.Bytes()
}

// noisyPNG is an opaque side×side PNG, with faint noise on most rows: at
// 4472 px it is just under 20 MB.
func noisyPNG(b *testing.B, side int) []byte {
	b.Helper()
	img := noise(side, 1, 3)
	for y := side * 9 / 10; y < side; y++ {
		row := img.Pix[y*img.Stride : (y+1)*img.Stride]
		copy(row, img.Pix[:img.Stride]) // repeats compress to nothing
	}
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, img); err != nil {
		b.Fatal(err)
	}
	checkLimits(b, buf.Bytes())
	return buf.Bytes()
}

// checkLimits fails the benchmark when an image would be refused, or is
// far below the 20 MB it is meant to approach.
func checkLimits(b *testing.B, data []byte) {
	b.Helper()
	img, err := rtb.CheckImage(data)
	if err != nil {
		b.Fatal(err)
	}
	if img.Width == rtb.MaxImageSide && len(data) < rtb.MaxImageBytes*3/4 {
		b.Fatalf("a %d×%d image of only %.1f MB", img.Width, img.Height, float64(len(data))/1e6)
	}
}

// noise is an opaque gradient with uniform noise of ±amp on each channel.
func noise(side, amp int, seed uint64) *image.RGBA {
	r := rand.New(rand.NewPCG(seed, 7))
	img := image.NewRGBA(image.Rect(0, 0, side, side))
	for y := range side {
		for x := range side {
			o := img.PixOffset(x, y)
			base := [3]int{200 - 100*x/side, 120 + 60*y/side, 90}
			for c, v := range base {
				img.Pix[o+c] = uint8(min(max(v+r.IntN(2*amp+1)-amp, 0), 255))
			}
			img.Pix[o+3] = 255
		}
	}
	return img
}

// buildServe compiles the app once for the benchmark.
func buildServe(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "rtbshopify")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// served is one `serve` process with its own fake store and fake Remove
// The Background.
type served struct {
	cmd   *exec.Cmd
	url   string
	log   string
	store *shopifytest.Store
	done  chan struct{} // closed once the process has exited
	exit  error
}

// startServe runs the app on dbURL with the given workers, installs
// shopDomain through the API and saves settings that process every image
// in replace mode; the fake Remove The Background delivers result.
func startServe(b *testing.B, bin, dbURL string, workers int, result rtbtest.Result) *served {
	b.Helper()
	const apiKey, secret = "bench-key", "bench-secret"
	store := shopifytest.New(shopifytest.Options{APIKey: apiKey, APISecret: secret, MediaProcessingDelay: 30 * time.Millisecond, RestoreRate: 10_000})
	b.Cleanup(store.Close)
	store.AddShop(shopDomain)
	fake := rtbtest.New(rtbtest.Options{
		Accounts: map[string]string{rtbEmail: rtbKey},
		NewFor:   20 * time.Millisecond, ProductionFor: 20 * time.Millisecond, QualityCheckFor: 20 * time.Millisecond,
		TickInterval: 10 * time.Millisecond, CallbackRetry: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond},
		Result: &result,
	})
	b.Cleanup(fake.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := b.TempDir()
	s := &served{url: "http://" + addr, log: filepath.Join(dir, "serve.log"), store: store, done: make(chan struct{})}
	f, err := os.Create(s.log)
	if err != nil {
		b.Fatal(err)
	}
	s.cmd = exec.Command(bin, "serve")
	s.cmd.Dir = dir // no .env of the developer's working directory
	s.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"LISTEN_ADDR=" + addr, "APP_URL=" + s.url, "DATABASE_URL=" + dbURL,
		"SHOPIFY_API_KEY=" + apiKey, "SHOPIFY_API_SECRET=" + secret, "SHOPIFY_ADMIN_BASE_URL=" + store.URL(),
		"RTB_BASE_URL=" + fake.BaseURL(), "RTB_FILES_BASE_URL=" + fake.URL() + "/", "ALLOW_PRIVATE_DOWNLOADS=true",
		"ENCRYPTION_KEYS=k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32)),
		"WORKERS=" + strconv.Itoa(workers), "SHOP_CONCURRENCY=" + strconv.Itoa(workers), "LOG_FORMAT=text", "LOG_LEVEL=info"}
	s.cmd.Stdout, s.cmd.Stderr = f, f
	if err := s.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { s.exit = s.cmd.Wait(); f.Close(); close(s.done) }()
	b.Cleanup(func() { s.cmd.Process.Kill(); <-s.done })
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("serve not ready within 30 s\n%s", logTail(s.log))
		}
		time.Sleep(50 * time.Millisecond)
	}
	settings, _ := json.Marshal(map[string]any{
		"enabled": true, "rtb": map[string]any{"contactEmail": rtbEmail, "contactApiKey": rtbKey},
		"templateId": rtbtest.DefaultTemplates()[0].ID, "imageScope": "all", "writeMode": "replace", "deliveryHours": 24,
	})
	req, _ := http.NewRequest(http.MethodPut, s.url+"/api/settings", bytes.NewReader(settings))
	req.Header.Set("Authorization", "Bearer "+store.SessionToken(shopDomain, time.Minute))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("save settings: %d %s", resp.StatusCode, body)
	}
	return s
}

// peakMB is the process's peak resident set so far (VmHWM), in MB.
func (s *served) peakMB(b *testing.B) float64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				b.Fatalf("VmHWM %q: %v", v, err)
			}
			return float64(kb) * 1024 / 1e6
		}
	}
	b.Fatal("no VmHWM in /proc status")
	return 0
}

// stop ends the process with SIGTERM and wants a clean exit.
func (s *served) stop(b *testing.B) {
	b.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if s.exit != nil {
			b.Errorf("serve exited with %v on SIGTERM\n%s", s.exit, logTail(s.log))
		}
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		b.Errorf("serve did not stop within 20 s of SIGTERM")
	}
}

// logTail is the end of a log file.
func logTail(path string) string {
	data, _ := os.ReadFile(path)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}
