package capture_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/medseg/medseg/internal/discover/capture"
	"github.com/medseg/medseg/internal/testenv"
)

// TestSampleCaptureIsCurrent fails when the committed sample capture is not what capture.Sample
// writes (run make generate), so the demo and the docs read what the code makes.
func TestSampleCaptureIsCurrent(t *testing.T) {
	var b bytes.Buffer
	if err := capture.Sample(&b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(testenv.RepoRoot(), "config", "samples", "discovery", "capture.jsonpb")
	committed, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), committed) {
		t.Fatalf("%s is not what capture.Sample writes (%d bytes, want %d): run make generate", path, len(committed), b.Len())
	}
}
