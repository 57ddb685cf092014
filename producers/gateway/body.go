package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
)

// Request body errors.
var (
	errNoEvents  = errors.New("gateway: body holds no event")
	errMalformed = errors.New("gateway: body is not a JSON object, a JSON array or NDJSON")
	errTooMany   = errors.New("gateway: body holds too many events")
	errMediaType = errors.New("gateway: unsupported content type")
	errEncoding  = errors.New("gateway: unsupported content encoding")
)

var (
	utf8BOM = []byte{0xEF, 0xBB, 0xBF}
	newline = []byte{'\n'}
	// ndjsonTypes declare NDJSON; jsonTypes (or no Content-Type) let the
	// gateway tell an object, an array and NDJSON apart.
	ndjsonTypes = map[string]bool{"application/x-ndjson": true, "application/ndjson": true, "application/jsonl": true}
	jsonTypes   = map[string]bool{"application/json": true}
)

// bodyForm says how a request body is to be read, from its Content-Type.
type bodyForm int

const (
	formDetect bodyForm = iota // application/json or none: object, array or NDJSON
	formNDJSON                 // declared NDJSON: one object per line
)

// formOf maps a Content-Type header to a body form.
func formOf(contentType string) (bodyForm, error) {
	if contentType == "" {
		return formDetect, nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, errMediaType
	}
	switch {
	case ndjsonTypes[mt]:
		return formNDJSON, nil
	case jsonTypes[mt]:
		return formDetect, nil
	}
	return 0, errMediaType
}

// splitBody splits a request body into the raw JSON of each event, in
// order. A body is one JSON object, a JSON array of objects, or NDJSON (one
// object per line, blank lines ignored); NDJSON is recognised without its
// content type when the body is not a single JSON value. A line of NDJSON
// that is not valid JSON is returned as is, for event.Parse to reject that
// event alone; an array must be valid JSON as a whole.
func splitBody(body []byte, form bodyForm, maxEvents int) ([]json.RawMessage, error) {
	body = bytes.TrimSpace(bytes.TrimPrefix(body, utf8BOM))
	if len(body) == 0 {
		return nil, errNoEvents
	}
	if form == formNDJSON {
		return splitLines(body, maxEvents)
	}
	switch body[0] {
	case '[':
		var evs []json.RawMessage
		if err := json.Unmarshal(body, &evs); err != nil {
			return nil, errMalformed
		}
		if len(evs) == 0 {
			return nil, errNoEvents
		}
		if len(evs) > maxEvents {
			return nil, errTooMany
		}
		return evs, nil
	case '{':
		if json.Valid(body) {
			if maxEvents < 1 {
				return nil, errTooMany
			}
			return []json.RawMessage{body}, nil
		}
		return splitLines(body, maxEvents)
	}
	return nil, errMalformed
}

func splitLines(body []byte, maxEvents int) ([]json.RawMessage, error) {
	var evs []json.RawMessage
	for line := range bytes.SplitSeq(body, newline) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if len(evs) == maxEvents {
			return nil, errTooMany
		}
		evs = append(evs, json.RawMessage(line))
	}
	if len(evs) == 0 {
		return nil, errNoEvents
	}
	return evs, nil
}
