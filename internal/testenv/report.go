package testenv

import (
	"io"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// CheckReportHTML parses the report: every non-void element is closed in order, the summary, zones
// and devices sections are there with an inline SVG and one article per device, and nothing
// refers outside the file (no script, no external href/src, no url(), no @import, no http).
func CheckReportHTML(t testing.TB, doc string, devices int) {
	t.Helper()
	void := map[string]bool{"meta": true, "br": true, "img": true, "link": true, "hr": true, "input": true}
	z := html.NewTokenizer(strings.NewReader(doc))
	var stack []string
	ids := map[string]bool{}
	articles, svgs := 0, 0
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if z.Err() != io.EOF {
				t.Fatalf("HTML does not parse: %v", z.Err())
			}
			break
		}
		tok := z.Token()
		switch tt {
		case html.StartTagToken, html.SelfClosingTagToken:
			switch tok.Data {
			case "script", "iframe", "object", "embed", "link", "img":
				t.Errorf("report contains <%s>: it must be self-contained", tok.Data)
			case "article":
				articles++
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
				case "href", "src", "xlink:href", "action":
					if !strings.HasPrefix(a.Val, "#") {
						t.Errorf("external reference %s=%q", a.Key, a.Val)
					}
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
	for _, id := range []string{"summary", "zones", "devices"} {
		if !ids[id] {
			t.Errorf("no section #%s", id)
		}
	}
	if svgs != 1 || articles != devices {
		t.Errorf("want one inline svg and %d device articles, got %d and %d", devices, svgs, articles)
	}
	lower := strings.ToLower(doc)
	for _, bad := range []string{"http://", "https://", "url(", "@import", "//cdn"} {
		if strings.Contains(lower, bad) {
			t.Errorf("report contains %q: it must not fetch anything when opened", bad)
		}
	}
}
