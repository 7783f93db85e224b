// Package browser loads a page in headless Chromium and reports what a person
// would notice on it: how long it took to load, which network requests it made,
// which elements overflow their boxes, whether given elements show in the first
// viewport, and which errors reached the console.
//
// It drives the browser with chromedp. Each call of [Load] starts a fresh
// browser with its own temporary profile, and stops it before it returns.
package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Defaults for the zero values of [Options].
const (
	DefaultWidth   = 1280
	DefaultHeight  = 900
	DefaultTimeout = 60 * time.Second
)

// MaxFullHeight is the largest height in CSS px of a full-page screenshot.
// A taller page is clipped at this height.
const MaxFullHeight = 16000

// dataURLMax is the length at which a data: URL is cut in Result.Requests.
const dataURLMax = 60

// Options for loading a page.
type Options struct {
	// Chromium is the path to the chromium binary.
	Chromium string

	// Width and Height are the viewport in CSS px, for example 1280x900.
	// Zero means DefaultWidth and DefaultHeight.
	Width, Height int

	// Screenshot, if not empty, is the path of a PNG of the first viewport.
	Screenshot string

	// FullScreenshot, if not empty, is the path of a PNG of the full page.
	// The height is capped at MaxFullHeight px; the rest is clipped.
	FullScreenshot string

	// Timeout limits the whole call, from the start of the browser to its
	// stop. Zero means DefaultTimeout.
	Timeout time.Duration

	// PDF, if not empty, is the path of the page printed to PDF (A4, with
	// backgrounds): what the print stylesheet makes of it.
	PDF string

	// Script, if not empty, is a JavaScript expression evaluated after the
	// checks (a promise is awaited); its string value is Result.Script.
	Script string

	// SkipOverflow leaves out the overflow check, which reads the layout of
	// every element: a benchmark measuring load time needs only the load.
	SkipOverflow bool

	// Visible lists CSS selectors that must be (at least partly) inside the
	// first viewport at load, with the page scrolled to the top.
	Visible []string
}

// Result is what Load found out about a page.
type Result struct {
	// Load is the time from the navigation start to the end of the load
	// event, as the page reports it in performance.timing
	// (loadEventEnd - navigationStart).
	Load time.Duration

	// Wall is the wall-clock time from the navigation command to the load
	// event, as this process sees it.
	Wall time.Duration

	// Requests are the URLs of every network request that the page made,
	// in order, except the URL of the page itself. A data: URL is cut to
	// 60 characters.
	Requests []string

	// Overflows describe, at most 50 times, content that overflows its box:
	// a page wider than the viewport; an HTML element with overflow-x visible
	// whose scrollWidth exceeds its clientWidth by more than 1 px (inline,
	// hidden and SVG elements are skipped); an SVG <text> that sticks out of
	// the <rect> of its <g class="box"> by more than 1 px. An element names
	// its tag, id, classes and the first 60 characters of its text.
	Overflows []string

	// NotVisible are the selectors of Options.Visible that match no element,
	// or whose first match is not inside the first viewport.
	NotVisible []string

	// Elements is the number of elements in the document,
	// document.getElementsByTagName('*').length.
	Elements int

	// ConsoleErrors are the calls of console.error and the uncaught
	// exceptions of the page.
	ConsoleErrors []string

	// Script is the value of Options.Script.
	Script string
}

// Problems are what a report must not show, one line each: overflows, selectors of
// Options.Visible missing from the first viewport, network requests and console errors.
func (r *Result) Problems() []string {
	var out []string
	for _, o := range r.Overflows {
		out = append(out, "overflow: "+o)
	}
	for _, v := range r.NotVisible {
		out = append(out, "not in the first viewport: "+v)
	}
	for _, q := range r.Requests {
		out = append(out, "network request: "+q)
	}
	for _, e := range r.ConsoleErrors {
		out = append(out, "console: "+e)
	}
	return out
}

// Load starts a headless Chromium, loads pageURL in it, waits for the load
// event, and runs the checks that Result describes. It writes the screenshots
// that o asks for.
//
// If the browser starts and the checks run, but the temporary profile
// directory cannot be removed afterwards, Load returns both the result and an
// error.
func Load(ctx context.Context, pageURL string, o Options) (res *Result, err error) {
	o = o.withDefaults()
	if o.Chromium == "" {
		return nil, errors.New("browser: no chromium binary given")
	}

	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	profile, err := os.MkdirTemp("", "medseg-chromium-*")
	if err != nil {
		return nil, fmt.Errorf("browser: creating the profile directory: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(profile); rerr != nil {
			err = errors.Join(err, fmt.Errorf("browser: removing the profile directory: %w", rerr))
		}
	}()

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, allocatorOptions(o, profile)...)
	defer cancelAlloc() // stops the browser and waits for it to exit
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	defer cancelTab()

	return run(tabCtx, pageURL, o)
}

// withDefaults fills in the zero fields of o.
func (o Options) withDefaults() Options {
	if o.Width <= 0 {
		o.Width = DefaultWidth
	}
	if o.Height <= 0 {
		o.Height = DefaultHeight
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return o
}

// allocatorOptions returns the command line of the browser.
func allocatorOptions(o Options, profile string) []chromedp.ExecAllocatorOption {
	opts := append([]chromedp.ExecAllocatorOption(nil), chromedp.DefaultExecAllocatorOptions[:]...)
	return append(opts,
		chromedp.ExecPath(o.Chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(o.Width, o.Height),
		chromedp.UserDataDir(profile),
	)
}

// run loads the page in the tab of ctx and runs the checks.
func run(ctx context.Context, pageURL string, o Options) (*Result, error) {
	rec := newRecorder(pageURL)
	// Listen starts the browser and opens the tab.
	if err := chromedp.Listen(ctx, rec.handle); err != nil {
		return nil, fmt.Errorf("browser: starting chromium %s: %w", o.Chromium, err)
	}
	if err := chromedp.Do(ctx, setViewport(o.Width, o.Height)); err != nil {
		return nil, fmt.Errorf("browser: setting the viewport: %w", err)
	}

	start := time.Now()
	rec.start()
	if err := chromedp.Do(ctx, chromedp.Navigate(pageURL)); err != nil {
		return nil, fmt.Errorf("browser: loading %s: %w", pageURL, err)
	}
	res := &Result{Wall: rec.wall(start)}

	if err := inspect(ctx, o, res); err != nil {
		return nil, err
	}
	res.Requests, res.ConsoleErrors = rec.snapshot()
	return res, nil
}

// inspect runs the checks on the loaded page and writes the screenshots.
// The full-page screenshot comes last, because it resizes the page for a
// moment.
func inspect(ctx context.Context, o Options, res *Result) error {
	ms, err := chromedp.Run(ctx, chromedp.Evaluate[float64](loadTimeJS, chromedp.EvalAwaitPromise))
	if err != nil {
		return fmt.Errorf("browser: reading performance.timing: %w", err)
	}
	res.Load = time.Duration(ms * float64(time.Millisecond))

	if res.NotVisible, err = notVisible(ctx, o.Visible); err != nil {
		return err
	}
	if o.Screenshot != "" {
		if err := writeShot(ctx, o.Screenshot, chromedp.CaptureScreenshot()); err != nil {
			return err
		}
	}
	if !o.SkipOverflow {
		if res.Overflows, err = chromedp.Run(ctx, chromedp.Evaluate[[]string](overflowJS)); err != nil {
			return fmt.Errorf("browser: checking overflows: %w", err)
		}
	}
	if res.Elements, err = chromedp.Run(ctx, chromedp.Evaluate[int](`document.getElementsByTagName('*').length`)); err != nil {
		return fmt.Errorf("browser: counting elements: %w", err)
	}
	if o.FullScreenshot != "" {
		if err := writeShot(ctx, o.FullScreenshot, fullScreenshot()); err != nil {
			return err
		}
	}
	if o.PDF != "" {
		if err := writeShot(ctx, o.PDF, printPDF()); err != nil {
			return err
		}
	}
	if o.Script != "" {
		if res.Script, err = chromedp.Run(ctx, chromedp.Evaluate[string](o.Script, chromedp.EvalAwaitPromise)); err != nil {
			return fmt.Errorf("browser: running the script: %w", err)
		}
	}
	return nil
}

// printPDF prints the page on A4 with its print stylesheet.
func printPDF() chromedp.Action[[]byte] {
	return func(ctx context.Context, t *chromedp.Target) ([]byte, error) {
		yes, margin := true, 0.4
		r, err := cdp.Call(ctx, t, page.PrintToPDF, page.PrintToPDFParams{PrintBackground: &yes, PaperWidth: 8.27, PaperHeight: 11.69,
			MarginTop: &margin, MarginBottom: &margin, MarginLeft: &margin, MarginRight: &margin})
		if err != nil {
			return nil, fmt.Errorf("printing to PDF: %w", err)
		}
		return r.Data, nil
	}
}

// PDFPages counts the pages of a PDF Chromium printed (its /Type /Page objects).
func PDFPages(pdf []byte) int { return len(pageObject.FindAllIndex(pdf, -1)) }

var pageObject = regexp.MustCompile(`/Type\s*/Page[^s]`)

// setViewport makes the viewport exactly w x h CSS px at scale 1, whatever
// the window size of the headless browser turns out to be.
func setViewport(w, h int) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
			Width:             int64(w),
			Height:            int64(h),
			DeviceScaleFactor: 1,
		})
		return err
	})
}

// notVisible scrolls to the top and returns the selectors that are missing
// or outside the first viewport.
func notVisible(ctx context.Context, selectors []string) ([]string, error) {
	if len(selectors) == 0 {
		return nil, nil
	}
	arg, err := json.Marshal(selectors)
	if err != nil {
		return nil, fmt.Errorf("browser: encoding the selectors: %w", err)
	}
	out, err := chromedp.Run(ctx, chromedp.Evaluate[[]string]("("+visibleJS+")("+string(arg)+")"))
	if err != nil {
		return nil, fmt.Errorf("browser: checking visible elements: %w", err)
	}
	return out, nil
}

// fullScreenshot captures the whole page as PNG, up to MaxFullHeight px tall.
func fullScreenshot() chromedp.Action[[]byte] {
	return func(ctx context.Context, t *chromedp.Target) ([]byte, error) {
		m, err := cdp.Call(ctx, t, page.GetLayoutMetrics, cdp.Empty{})
		if err != nil {
			return nil, fmt.Errorf("reading the layout metrics: %w", err)
		}
		if m.CSSContentSize == nil {
			return nil, errors.New("the layout metrics have no content size")
		}
		size := m.CSSContentSize
		yes := true
		r, err := cdp.Call(ctx, t, page.CaptureScreenshot, page.CaptureScreenshotParams{
			Format:                page.CaptureScreenshotFormatPng,
			CaptureBeyondViewport: &yes,
			FromSurface:           &yes,
			Clip: &page.Viewport{
				Width:  math.Ceil(size.Width),
				Height: math.Min(math.Ceil(size.Height), MaxFullHeight),
				Scale:  1,
			},
		})
		if err != nil {
			return nil, err
		}
		return r.Data, nil
	}
}

// writeShot runs the screenshot action and writes the image to path.
func writeShot(ctx context.Context, path string, shot chromedp.Action[[]byte]) error {
	buf, err := chromedp.Run(ctx, shot)
	if err != nil {
		return fmt.Errorf("browser: taking the screenshot %s: %w", path, err)
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		return fmt.Errorf("browser: writing the screenshot: %w", err)
	}
	return nil
}

// recorder collects the events of the tab. Its handle method runs on the
// goroutine that reads the messages of the browser, so it only appends
// under a lock.
type recorder struct {
	pageURL string

	mu       sync.Mutex
	started  bool
	loadedAt time.Time
	requests []string
	errs     []string
}

func newRecorder(pageURL string) *recorder {
	u, _, _ := strings.Cut(pageURL, "#")
	return &recorder{pageURL: u}
}

// start marks the moment of the navigation; earlier events are ignored.
func (r *recorder) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started = true
}

// handle records one event of the tab.
func (r *recorder) handle(ev any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started {
		return
	}
	switch ev := ev.(type) {
	case *page.EventLoadEventFired:
		r.loadedAt = time.Now()
	case *network.EventRequestWillBeSent:
		if ev.Request != nil && ev.Request.URL != r.pageURL {
			r.requests = append(r.requests, requestURL(ev.Request.URL))
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			r.errs = append(r.errs, "console.error: "+argsText(ev.Args))
		}
	case *runtime.EventExceptionThrown:
		r.errs = append(r.errs, "uncaught: "+exceptionText(ev.ExceptionDetails))
	}
}

// wall returns the time from start to the last load event, or to now if no
// load event was seen.
func (r *recorder) wall(start time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.loadedAt.IsZero() {
		return time.Since(start)
	}
	return r.loadedAt.Sub(start)
}

// snapshot returns copies of the requests and the console errors so far.
func (r *recorder) snapshot() (requests, errs []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...), append([]string(nil), r.errs...)
}

// requestURL shortens a data: URL to dataURLMax characters.
func requestURL(u string) string {
	if strings.HasPrefix(u, "data:") && len(u) > dataURLMax {
		return u[:dataURLMax-3] + "..."
	}
	return u
}

// argsText joins the arguments of a console call as the console shows them.
func argsText(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		parts = append(parts, objectText(a))
	}
	return strings.Join(parts, " ")
}

// objectText is a short text form of a remote object.
func objectText(o *runtime.RemoteObject) string {
	switch {
	case o == nil:
		return ""
	case len(o.Value) > 0:
		var s string
		if json.Unmarshal(o.Value, &s) == nil {
			return s
		}
		return string(o.Value)
	case o.UnserializableValue != "":
		return string(o.UnserializableValue)
	case o.Description != "":
		return o.Description
	}
	return string(o.Type)
}

// exceptionText is the message of an uncaught exception.
func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "unknown exception"
	}
	if d.Exception != nil && d.Exception.Description != "" {
		return d.Exception.Description
	}
	return d.Text
}

// loadTimeJS waits until performance.timing has the end of the load event
// and returns loadEventEnd - navigationStart in ms.
const loadTimeJS = `new Promise(resolve => {
	const t = performance.timing;
	const poll = () => t.loadEventEnd > 0
		? resolve(t.loadEventEnd - t.navigationStart)
		: setTimeout(poll, 10);
	poll();
})`

// visibleJS takes a list of selectors, scrolls to the top, and returns the
// selectors that match nothing or whose first match is outside the viewport.
const visibleJS = `function (selectors) {
	window.scrollTo({top: 0, left: 0, behavior: 'instant'});
	const out = [];
	for (const sel of selectors) {
		let el = null;
		try { el = document.querySelector(sel); } catch (e) { el = null; }
		if (!el) { out.push(sel); continue; }
		const r = el.getBoundingClientRect();
		if (!(r.top < window.innerHeight && r.bottom > 0 && r.height > 0)) out.push(sel);
	}
	return out;
}`

// overflowJS returns up to 50 descriptions of overflows:
//
//  1. the page is wider than the viewport;
//  2. an HTML element under body with overflow-x visible whose content is
//     wider than its box (scrollWidth > clientWidth + 1). Inline elements,
//     elements that are not rendered (display none, closed <details>), SVG
//     content, and elements that clip or scroll on purpose are skipped;
//  3. a <text> inside an SVG element of class "box" that sticks out of the
//     <rect> of that box by more than 1 px.
//
// Rule 2 is one plain loop over all elements: the cheap clientWidth and
// scrollWidth come first, the costly style and ancestor checks only run for
// the few candidates.
const overflowJS = `(() => {
	const MAX = 50;
	const out = [];
	const add = s => { if (out.length < MAX) out.push(s); };
	const clean = s => (s || '').replace(/\s+/g, ' ').trim().slice(0, 60);
	const describe = el => {
		let d = el.tagName.toLowerCase();
		if (el.id) d += '#' + el.id;
		const cls = clean(el.getAttribute('class'));
		if (cls) d += '.' + cls.split(' ').join('.');
		const text = clean(el.textContent);
		if (text) d += ' "' + text + '"';
		return d;
	};
	const hidden = el => {
		if (el.checkVisibility && !el.checkVisibility()) return true;
		const closed = el.closest('details:not([open])');
		if (!closed) return false;
		const summary = el.closest('summary');
		return !(summary && summary.parentElement === closed);
	};

	const vw = window.innerWidth;
	const sw = document.documentElement.scrollWidth;
	if (sw > vw + 1) add('page is ' + (sw - vw) + ' px wider than the viewport');

	const HTML = 'http://www.w3.org/1999/xhtml';
	const all = document.body ? document.body.getElementsByTagName('*') : [];
	for (let i = 0; i < all.length && out.length < MAX; i++) {
		const el = all[i];
		const cw = el.clientWidth;
		if (cw === 0) continue;
		const over = el.scrollWidth - cw;
		if (over <= 1) continue;
		if (el.namespaceURI !== HTML || el.closest('svg')) continue;
		if (getComputedStyle(el).overflowX !== 'visible') continue;
		if (hidden(el)) continue;
		add(describe(el) + ' overflows by ' + over + ' px');
	}

	const corners = (b, m) => [[b.x, b.y], [b.x + b.width, b.y], [b.x, b.y + b.height], [b.x + b.width, b.y + b.height]]
		.map(([x, y]) => [m.a * x + m.c * y + m.e, m.b * x + m.d * y + m.f]);
	for (const box of document.querySelectorAll('svg .box')) {
		if (out.length >= MAX) break;
		const rect = box.querySelector('rect');
		if (!rect) continue;
		const rctm = rect.getCTM();
		if (!rctm) continue;
		const toRect = rctm.inverse();
		const r = rect.getBBox();
		for (const text of box.querySelectorAll('text')) {
			const tctm = text.getCTM();
			if (!tctm) continue;
			const b = text.getBBox();
			if (b.width === 0 && b.height === 0) continue;
			const pts = corners(b, toRect.multiply(tctm));
			const xs = pts.map(p => p[0]), ys = pts.map(p => p[1]);
			const over = Math.max(
				r.x - Math.min(...xs), Math.max(...xs) - (r.x + r.width),
				r.y - Math.min(...ys), Math.max(...ys) - (r.y + r.height));
			if (over > 1) add("svg text '" + clean(text.textContent) + "' overflows its box by " + Math.ceil(over) + ' px');
		}
	}
	return out;
})()`
