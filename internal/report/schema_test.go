package report_test

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/medseg/medseg/hack/reportschema/schema"
	"github.com/medseg/medseg/internal/report"
	"github.com/medseg/medseg/internal/report/reporttest"
)

// schemaFile is docs/report.schema.json, relative to this package.
const schemaFile = "../../docs/report.schema.json"

// compileSchema compiles the committed schema.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	data, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", schemaFile, err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(schema.ID, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(schema.ID)
	if err != nil {
		t.Fatalf("compiling %s: %v", schemaFile, err)
	}
	return s
}

// reportJSON is a report's JSON form (report -o json), decoded as the validator wants it.
func reportJSON(t *testing.T, r *report.Report) any {
	t.Helper()
	var b bytes.Buffer
	if err := report.JSON(&b, r); err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(&b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSchemaValidatesReports(t *testing.T) {
	s := compileSchema(t)
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		r    *report.Report
	}{
		{"synthetic hospital", report.Build(reporttest.Hospital(1000, now))},
		{"fleet with an unreachable site", report.BuildFleet([]report.SiteInput{
			{Name: "north", Input: reporttest.Hospital(50, now)},
			{Name: "down", Err: errors.New("dial tcp 127.0.0.1:1: connection refused")},
		}, now)},
		{"empty", report.Build(report.Input{Now: now})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Validate(reportJSON(t, tc.r)); err != nil {
				t.Errorf("the report's JSON does not match %s:\n%v", schemaFile, err)
			}
		})
	}
}

// TestSchemaRejects proves the schema can fail: an unknown property (a Go field added without
// regenerating the schema) and a missing required one.
func TestSchemaRejects(t *testing.T) {
	s := compileSchema(t)
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	r := report.Build(reporttest.Hospital(300, now))
	summary := func(doc any) map[string]any {
		m, ok := doc.(map[string]any)
		if !ok {
			t.Fatalf("report JSON is a %T, not an object", doc)
		}
		sm, ok := m["summary"].(map[string]any)
		if !ok {
			t.Fatalf("summary is a %T, not an object", m["summary"])
		}
		return sm
	}

	unknown := reportJSON(t, r)
	summary(unknown)["surprise"] = 1
	if err := s.Validate(unknown); err == nil {
		t.Error("a summary with an unknown property validates")
	}

	missing := reportJSON(t, r)
	delete(summary(missing), "devices")
	if err := s.Validate(missing); err == nil {
		t.Error("a summary without devices validates")
	}
}

// TestSchemaUpToDate fails when docs/report.schema.json is not what the generator makes of this
// package's source now.
func TestSchemaUpToDate(t *testing.T) {
	want, err := schema.Generate(".")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("docs/report.schema.json is stale: run make generate")
	}
}
