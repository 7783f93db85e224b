package feed

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// EPSS are FIRST's daily EPSS scores, by CVE.
type EPSS struct {
	Model string
	Date  string // YYYY-MM-DD of the scores
	// Scores by CVE: the probability and the percentile as decimal strings (at most 6 decimals).
	Scores map[string]EPSSScore
}

// EPSSScore is one CVE's score.
type EPSSScore struct {
	EPSS, Percentile string
}

// ParseEPSS reads EPSS CSV files (gzipped or not): an optional "#model_version:...,score_date:..."
// line, a header naming cve and epss (and percentile), then one row per CVE. A row with a
// malformed CVE ID or a score outside [0, 1] is a problem.
func ParseEPSS(docs []Document, partial bool) (*EPSS, []Problem, error) {
	out := &EPSS{Scores: map[string]EPSSScore{}}
	var problems []Problem
	for _, d := range docs {
		ps, err := parseEPSSDoc(d, out)
		if err != nil {
			return nil, nil, err
		}
		problems = append(problems, ps...)
	}
	if len(problems) > 0 && !partial {
		return nil, problems, Problems(problems)
	}
	return out, problems, nil
}

func parseEPSSDoc(d Document, out *EPSS) ([]Problem, error) {
	br := bufio.NewReader(bytes.NewReader(d.Data))
	line := 0
	if first, err := br.Peek(1); err == nil && first[0] == '#' {
		meta, _ := br.ReadString('\n')
		line++
		for _, kv := range strings.Split(strings.TrimSpace(strings.TrimPrefix(meta, "#")), ",") {
			k, v, _ := strings.Cut(kv, ":")
			switch strings.TrimSpace(k) {
			case "model_version":
				out.Model = strings.TrimSpace(v)
			case "score_date":
				if t, ok := parseScoreDate(strings.TrimSpace(v)); ok {
					out.Date = t.Format(time.DateOnly)
				}
			}
		}
	}
	r := csv.NewReader(br)
	r.ReuseRecord = true
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, Problems{{Document: d.Name, Message: "not an EPSS CSV file: no header: " + err.Error()}}
	}
	line++
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	ci, okC := col["cve"]
	ei, okE := col["epss"]
	pi, okP := col["percentile"]
	if !okC || !okE {
		return nil, fmt.Errorf("%w: %s is not an EPSS CSV file: its header %q has no cve and epss columns (for KEV use feed kev, for CSAF or CycloneDX feed vex)", ErrWrongFormat, d.Name, strings.Join(header, ","))
	}
	var problems []Problem
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line++
		where := fmt.Sprintf("line %d", line)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) && pe.Err != csv.ErrFieldCount {
				problems = append(problems, Problem{Document: d.Name, Where: where, Message: err.Error()})
				continue
			}
		}
		if len(rec) <= max(ci, ei) || (okP && len(rec) <= pi) {
			problems = append(problems, Problem{Document: d.Name, Where: where, Message: fmt.Sprintf("%d fields, want %d", len(rec), len(header))})
			continue
		}
		id := strings.ToUpper(strings.TrimSpace(rec[ci]))
		if !CVEPattern.MatchString(id) {
			problems = append(problems, Problem{Document: d.Name, Where: where, Message: fmt.Sprintf("cve %q is not a CVE ID", rec[ci])})
			continue
		}
		epss, err := probability(rec[ei])
		if err != nil {
			problems = append(problems, Problem{Document: d.Name, Where: where + " (" + id + ")", Message: "epss " + err.Error()})
			continue
		}
		s := EPSSScore{EPSS: epss}
		if okP {
			if s.Percentile, err = probability(rec[pi]); err != nil {
				problems = append(problems, Problem{Document: d.Name, Where: where + " (" + id + ")", Message: "percentile " + err.Error()})
				continue
			}
		}
		out.Scores[id] = s
	}
	if len(out.Scores) == 0 && len(problems) == 0 {
		problems = append(problems, Problem{Document: d.Name, Message: "no scores (header only)"})
	}
	return problems, nil
}

// probability reads a decimal in [0, 1] and writes it with at most 6 decimals, as the API takes it.
func probability(s string) (string, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return "", fmt.Errorf("%q is not a number", s)
	}
	if v < 0 || v > 1 || v != v {
		return "", fmt.Errorf("%s is outside [0, 1]", s)
	}
	if v == 0 {
		v = 0 // not -0
	}
	out := strconv.FormatFloat(v, 'f', 6, 64)
	out = strings.TrimRight(strings.TrimRight(out, "0"), ".")
	if out == "" {
		out = "0"
	}
	return out, nil
}

func parseScoreDate(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05Z0700", time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
