package feed

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// CompareVersions orders two versions: numerically where both segments are numbers, otherwise
// lexically, segment by segment ("3.10.1" > "3.9", "2.4.0-rc1" < "2.4.0"). Firmware versions
// are rarely semantic versions, so this is the generic order vers calls for when a scheme has no
// rules of its own.
func CompareVersions(a, b string) int {
	main := func(v string) (string, string) {
		v = strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(v), "v"), "V")
		if i := strings.IndexAny(v, "-~+"); i >= 0 {
			return v[:i], v[i:]
		}
		return v, ""
	}
	am, apre := main(a)
	bm, bpre := main(b)
	if c := compareSegments(am, bm); c != 0 {
		return c
	}
	switch {
	case apre == bpre:
		return 0
	case apre == "" || strings.HasPrefix(apre, "+"): // a release sorts after its pre-releases
		if strings.HasPrefix(bpre, "+") {
			return compareSegments(apre, bpre)
		}
		return 1
	case bpre == "" || strings.HasPrefix(bpre, "+"):
		return -1
	}
	return compareSegments(apre, bpre)
}

func compareSegments(a, b string) int {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	}
	as, bs := split(a), split(b)
	for i := 0; i < max(len(as), len(bs)); i++ {
		if i >= len(as) {
			if allZero(bs[i:]) {
				return 0
			}
			return -1
		}
		if i >= len(bs) {
			if allZero(as[i:]) {
				return 0
			}
			return 1
		}
		x, errx := strconv.ParseUint(as[i], 10, 64)
		y, erry := strconv.ParseUint(bs[i], 10, 64)
		switch {
		case errx == nil && erry == nil:
			if x != y {
				if x < y {
					return -1
				}
				return 1
			}
		case errx == nil: // numbers sort after words ("1.0.rc" < "1.0.1")
			return 1
		case erry == nil:
			return -1
		default:
			if c := strings.Compare(strings.ToLower(as[i]), strings.ToLower(bs[i])); c != 0 {
				return c
			}
		}
	}
	return 0
}

func allZero(segs []string) bool {
	for _, s := range segs {
		if n, err := strconv.ParseUint(s, 10, 64); err != nil || n != 0 {
			return false
		}
	}
	return true
}

// Range is a version range in the vers syntax (github.com/package-url/vers-spec):
// "vers:<scheme>/<constraint>|<constraint>...", each constraint a comparator (=, !=, <, <=, >,
// >=; none means =) and a version, or "*" for every version.
type Range struct {
	Text        string
	any         bool
	constraints []constraint
}

type constraint struct {
	op, version string
}

// ParseRange reads a vers range.
func ParseRange(s string) (*Range, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(strings.ToLower(s[:min(len(s), 5)])+s[min(len(s), 5):], "vers:")
	if !ok {
		return nil, fmt.Errorf("version range %q is not in the vers syntax (vers:scheme/constraints, e.g. vers:generic/>=1.0|<2.0)", s)
	}
	_, cs, ok := strings.Cut(rest, "/")
	if !ok || strings.TrimSpace(cs) == "" {
		return nil, fmt.Errorf("version range %q: no constraints after the scheme", s)
	}
	r := &Range{Text: s}
	if strings.TrimSpace(cs) == "*" {
		r.any = true
		return r, nil
	}
	for _, c := range strings.Split(cs, "|") {
		c = strings.TrimSpace(c)
		op := ""
		for _, o := range []string{">=", "<=", "!=", "<", ">", "="} {
			if strings.HasPrefix(c, o) {
				op, c = o, strings.TrimSpace(c[len(o):])
				break
			}
		}
		if op == "" {
			op = "="
		}
		if c == "" {
			return nil, fmt.Errorf("version range %q: a constraint has no version", s)
		}
		r.constraints = append(r.constraints, constraint{op: op, version: c})
	}
	sort.SliceStable(r.constraints, func(i, j int) bool {
		return CompareVersions(r.constraints[i].version, r.constraints[j].version) < 0
	})
	return r, nil
}

// Contains says whether the version is in the range, by the vers algorithm: equalities first,
// then the intervals the sorted comparators make.
func (r *Range) Contains(v string) bool {
	if r.any {
		return true
	}
	var cmp []constraint
	for _, c := range r.constraints {
		switch c.op {
		case "=":
			if CompareVersions(v, c.version) == 0 {
				return true
			}
		case "!=":
			if CompareVersions(v, c.version) == 0 {
				return false
			}
		default:
			cmp = append(cmp, c)
		}
	}
	holds := func(c constraint) bool {
		d := CompareVersions(v, c.version)
		switch c.op {
		case "<":
			return d < 0
		case "<=":
			return d <= 0
		case ">":
			return d > 0
		default: // >=
			return d >= 0
		}
	}
	lower := func(c constraint) bool { return c.op == ">" || c.op == ">=" }
	for i, c := range cmp {
		if i == 0 && !lower(c) && holds(c) {
			return true
		}
		if i == len(cmp)-1 && lower(c) && holds(c) {
			return true
		}
		if i+1 < len(cmp) && lower(c) && !lower(cmp[i+1]) && holds(c) && holds(cmp[i+1]) {
			return true
		}
	}
	return false
}
