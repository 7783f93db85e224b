package browser

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const cleanPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>clean</title>
<style>body { margin: 0; font: 16px sans-serif; } #tiles { display: grid; grid-template-columns: repeat(4, 1fr); gap: 8px; }</style>
</head><body>
<div id="tiles"><div>one</div><div>two</div><div>three</div><div>four</div></div>
<p>Some text that wraps normally inside the page.</p>
<details><summary>more</summary><div style="width:100px;white-space:nowrap">a hidden line that would overflow if it were shown</div></details>
<div style="width:100px;overflow:auto;white-space:nowrap">a scrolling line that overflows on purpose</div>
</body></html>`

const brokenPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>broken</title></head><body>
<div id="narrow" style="width:100px;white-space:nowrap">Supercalifragilisticexpialidocious-and-then-some-more</div>
<svg width="200" height="40"><g class="box"><rect x="0" y="0" width="50" height="20"/><text x="5" y="15">a very long text that overflows</text></g></svg>
<img src="http://example.invalid/x.png" alt="">
</body></html>`

const farPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>far</title></head><body style="margin:0">
<div id="top">top</div>
<div style="height:3000px"></div>
<div id="urgent">urgent</div>
</body></html>`

// writePage writes html into dir and returns its file:// URL.
func writePage(t *testing.T, dir, name, html string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(html), 0o644); err != nil {
		t.Fatal(err)
	}
	return (&url.URL{Scheme: "file", Path: p}).String()
}

func load(t *testing.T, pageURL string, o Options) *Result {
	t.Helper()
	o.Chromium = os.Getenv("MEDSEG_CHROMIUM")
	o.Width, o.Height, o.Timeout = 1280, 900, 60*time.Second
	start := time.Now()
	res, err := Load(context.Background(), pageURL, o)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Logf("Load took %v (page load %v, wall %v, %d elements)", time.Since(start), res.Load, res.Wall, res.Elements)
	return res
}

func TestLoad(t *testing.T) {
	if os.Getenv("MEDSEG_CHROMIUM") == "" {
		t.Skip("set MEDSEG_CHROMIUM to the path of a chromium binary to run the browser tests")
	}
	dir := t.TempDir()

	t.Run("clean", func(t *testing.T) {
		shot := filepath.Join(dir, "clean.png")
		full := filepath.Join(dir, "clean-full.png")
		res := load(t, writePage(t, dir, "clean.html", cleanPage), Options{
			Visible: []string{"#tiles"}, Screenshot: shot, FullScreenshot: full,
		})
		if len(res.Overflows) != 0 {
			t.Errorf("Overflows = %q, want none", res.Overflows)
		}
		if len(res.Requests) != 0 {
			t.Errorf("Requests = %q, want none", res.Requests)
		}
		if len(res.NotVisible) != 0 {
			t.Errorf("NotVisible = %q, want none", res.NotVisible)
		}
		if len(res.ConsoleErrors) != 0 {
			t.Errorf("ConsoleErrors = %q, want none", res.ConsoleErrors)
		}
		if res.Elements < 10 || res.Load <= 0 || res.Wall <= 0 {
			t.Errorf("Elements = %d, Load = %v, Wall = %v; want > 10 elements and positive times", res.Elements, res.Load, res.Wall)
		}
		for _, p := range []string{shot, full} {
			if b, err := os.ReadFile(p); err != nil || !strings.HasPrefix(string(b), "\x89PNG") {
				t.Errorf("screenshot %s: not a PNG (err %v)", p, err)
			}
		}
	})

	t.Run("broken", func(t *testing.T) {
		res := load(t, writePage(t, dir, "broken.html", brokenPage), Options{})
		t.Logf("Overflows: %q", res.Overflows)
		if !slices.ContainsFunc(res.Overflows, func(s string) bool { return strings.HasPrefix(s, "div#narrow ") }) {
			t.Errorf("Overflows = %q, want one for div#narrow", res.Overflows)
		}
		if !slices.ContainsFunc(res.Overflows, func(s string) bool {
			return strings.HasPrefix(s, "svg text 'a very long text that overflows' overflows its box by ")
		}) {
			t.Errorf("Overflows = %q, want one for the svg text", res.Overflows)
		}
		if want := []string{"http://example.invalid/x.png"}; !slices.Equal(res.Requests, want) {
			t.Errorf("Requests = %q, want %q", res.Requests, want)
		}
	})

	t.Run("far", func(t *testing.T) {
		res := load(t, writePage(t, dir, "far.html", farPage), Options{Visible: []string{"#top", "#urgent", "#missing"}})
		if want := []string{"#urgent", "#missing"}; !slices.Equal(res.NotVisible, want) {
			t.Errorf("NotVisible = %q, want %q", res.NotVisible, want)
		}
	})
}
