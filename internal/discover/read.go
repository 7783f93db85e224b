package discover

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/encoding/protojson"
)

// maxLine bounds one record: flows with many labels or policies exceed bufio's 64 KiB default.
const maxLine = 16 << 20

// jsonpb decodes as `hubble observe` reads its own output: fields a newer Hubble added are
// ignored, not an error.
var jsonpb = protojson.UnmarshalOptions{DiscardUnknown: true}

// ErrNoFlows means the input held no flow record at all.
var ErrNoFlows = errors.New("no flow records")

// ReadJSONPB aggregates the records of `hubble observe -o jsonpb` (one GetFlowsResponse per
// line) from r. A line that does not decode is skipped and counted; name says where it came
// from in the first such message.
func (a *Aggregator) ReadJSONPB(r io.Reader, name string) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var res observerpb.GetFlowsResponse
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if err := jsonpb.Unmarshal(b, &res); err != nil {
			a.malformed(fmt.Sprintf("%s:%d: %v", name, line, err))
			continue
		}
		a.AddResponse(res.GetFlow(), res.GetLostEvents())
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%s:%d: a record is longer than %d MiB", name, line+1, maxLine>>20)
		}
		return fmt.Errorf("reading %s: %w", name, err)
	}
	return nil
}

func (a *Aggregator) malformed(msg string) {
	a.stats.Records++
	a.stats.Malformed++
	if a.stats.FirstMalformed == "" {
		a.stats.FirstMalformed = msg
	}
}

// Check says whether the input could be read at all: an error when no flow record was found,
// naming the first malformed record if there was one.
func (s *Stats) Check() error {
	if s.Flows > 0 {
		return nil
	}
	if s.Malformed > 0 {
		return fmt.Errorf("%w: all %d records were malformed (first: %s); is this `hubble observe -o jsonpb` output?",
			ErrNoFlows, s.Malformed, s.FirstMalformed)
	}
	return fmt.Errorf("%w in the input (%d records read)", ErrNoFlows, s.Records)
}

// Warnings say what in the input makes the result incomplete.
func (s *Stats) Warnings() []string {
	var out []string
	if s.Malformed > 0 {
		out = append(out, fmt.Sprintf("skipped %d malformed records (first: %s)", s.Malformed, s.FirstMalformed))
	}
	if s.LostEvents > 0 {
		out = append(out, fmt.Sprintf("Hubble reported %d lost events: the capture is incomplete, flows may be missing", s.LostEvents))
	}
	if s.Overflow > 0 {
		out = append(out, fmt.Sprintf("%d connections not aggregated: too many distinct observations", s.Overflow))
	}
	return out
}
