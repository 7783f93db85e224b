package testenv

import (
	"io"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// CheckReportHTML parses the report: every non-void element is closed in order, the summary, zones,
// lists and devices sections are there with an inline SVG and one <details class="dev"> per device, and
// nothing refers outside the file (one inline script and no other, no external href/src, no
// url(), no @import, no http).
func CheckReportHTML(t testing.TB, doc string, devices int) {
	t.Helper()
	void := map[string]bool{"meta": true, "br": true, "img": true, "link": true, "hr": true, "input": true}
	z := html.NewTokenizer(strings.NewReader(doc))
	var stack []string
	ids := map[string]bool{}
	articles, svgs, scripts := 0, 0, 0
	var inline []string
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if z.Err() != io.EOF {
				t.Fatalf("HTML does not parse: %v", z.Err())
			}
			break
		}
		tok := z.Token()
		if tt == html.TextToken && len(stack) > 0 && (stack[len(stack)-1] == "style" || stack[len(stack)-1] == "script") {
			inline = append(inline, tok.Data)
		}
		switch tt {
		case html.StartTagToken, html.SelfClosingTagToken:
			switch tok.Data {
			case "script":
				scripts++
				if scripts > 1 {
					t.Errorf("report contains more than one <script>")
				}
			case "iframe", "object", "embed", "link", "img":
				t.Errorf("report contains <%s>: it must be self-contained", tok.Data)
			case "details":
				for _, a := range tok.Attr {
					if a.Key == "class" && a.Val == "dev" {
						articles++
					}
				}
			case "svg":
				svgs++
			}
			for _, a := range tok.Attr {
				switch a.Key {
				case "id":
					if ids[a.Val] {
						t.Errorf("duplicate id %q", a.Val)
					}
					ids[a.Val] = true
				case "src":
					t.Errorf("report refers to %s=%q: it must be self-contained", a.Key, a.Val)
				case "href", "xlink:href", "action":
					if !strings.HasPrefix(a.Val, "#") {
						t.Errorf("external reference %s=%q", a.Key, a.Val)
					}
				}
				if strings.Contains(strings.ToLower(a.Val), "http://") || strings.Contains(strings.ToLower(a.Val), "https://") {
					t.Errorf("attribute %s=%q refers outside the file", a.Key, a.Val)
				}
				if a.Key == "style" {
					inline = append(inline, a.Val)
				}
				if strings.HasPrefix(a.Key, "on") {
					t.Errorf("event handler attribute %s", a.Key)
				}
			}
			if tt == html.StartTagToken && !void[tok.Data] {
				stack = append(stack, tok.Data)
			}
		case html.EndTagToken:
			if len(stack) == 0 || stack[len(stack)-1] != tok.Data {
				t.Fatalf("unbalanced </%s>; open: %v", tok.Data, stack)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) != 0 {
		t.Errorf("unclosed elements: %v", stack)
	}
	for _, id := range []string{"summary", "tiles", "urgent", "not-segmented", "audit", "ending", "flatness", "zones", "lists", "devices"} {
		if !ids[id] {
			t.Errorf("no section #%s", id)
		}
	}
	if svgs != 1 || articles != devices {
		t.Errorf("want one inline svg and %d device details, got %d and %d", devices, svgs, articles)
	}
	// The style and the script must not fetch; text may name servers (a site's source).
	for _, code := range inline {
		lower := strings.ToLower(code)
		for _, bad := range []string{"http://", "https://", "url(", "@import", "//cdn", "fetch(", "xmlhttprequest", "import(", "websocket"} {
			if strings.Contains(lower, bad) {
				t.Errorf("the report's style or script contains %q: it must not fetch anything when opened", bad)
			}
		}
	}
}
