package emulator

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// runnerJobResponse is JOB_RESPONSE_FILE as the real gitlab-runner 19.4 wrote it for
// examples/job-response.json (captured by e2e/realrunner, which checks it on every run
// and rewrites it with -update). Its keys, their order and the JSON kind of each value
// are the runner's spec.Job as encoding/json sees it.
//
//go:embed testdata/runner-job-response.json
var runnerJobResponse []byte

// RunnerJobResponse re-encodes a job the way gitlab-runner 19.4 writes JOB_RESPONSE_FILE:
// not GitLab's bytes but its own spec.Job, decoded and encoded again with encoding/json.
// So keys the runner does not know are dropped (job_info.id), known keys that GitLab did
// not send come out as zero values (job_info.pipeline_id: 0, inputs: {}, features.tracing:
// null), keys follow the runner's field order, and strings are re-escaped (<, > and & as
// \u003c, \u003e, \u0026). The result is compact, with the encoder's trailing newline.
//
// The schema is the captured file: a key's zero value is the zero of its kind there, and
// the first element of a captured array is the schema of every element. Values whose
// schema the capture cannot tell (a null there, an array captured empty) are kept as given.
//
// The runner's own library cannot be linked here (spec.Job needs modules the Go module
// proxy does not serve), hence a schema learnt from the runner's output.
func RunnerJobResponse(response []byte) ([]byte, error) {
	schema, err := parseSchema(runnerJobResponse)
	if err != nil {
		return nil, fmt.Errorf("emulator: runner job response schema: %w", err)
	}
	var out bytes.Buffer
	if err := schema.encode(&out, response); err != nil {
		return nil, fmt.Errorf("emulator: re-encode job response: %w", err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// schemaNode is one value of the captured file: its kind, and for objects the keys in
// order, for arrays the first element.
type schemaNode struct {
	kind   byte // '{', '[', '"', '0' (number), 'b' (bool), 'n' (null)
	keys   []string
	fields map[string]*schemaNode
	elem   *schemaNode
}

func parseSchema(data []byte) (*schemaNode, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := parseNode(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data")
	}
	return n, nil
}

func parseNode(dec *json.Decoder) (*schemaNode, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			n := &schemaNode{kind: '{', fields: map[string]*schemaNode{}}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key := k.(string)
				child, err := parseNode(dec)
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, key)
				n.fields[key] = child
			}
			_, err := dec.Token()
			return n, err
		}
		n := &schemaNode{kind: '['}
		for dec.More() {
			child, err := parseNode(dec)
			if err != nil {
				return nil, err
			}
			if n.elem == nil {
				n.elem = child
			}
		}
		_, err := dec.Token()
		return n, err
	case string:
		return &schemaNode{kind: '"'}, nil
	case json.Number:
		return &schemaNode{kind: '0'}, nil
	case bool:
		return &schemaNode{kind: 'b'}, nil
	default:
		return &schemaNode{kind: 'n'}, nil
	}
}

// encode writes given (nil: absent) as the runner would after decoding it into this node.
func (n *schemaNode) encode(out *bytes.Buffer, given json.RawMessage) error {
	given = bytes.TrimSpace(given)
	if len(given) == 0 || (bytes.Equal(given, []byte("null")) && n.kind != 'n') {
		// encoding/json leaves the zero value for an absent key and for null.
		n.zero(out)
		return nil
	}
	switch n.kind {
	case '{':
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(given, &fields); err != nil {
			return err
		}
		out.WriteByte('{')
		for i, k := range n.keys {
			if i > 0 {
				out.WriteByte(',')
			}
			key, _ := json.Marshal(k)
			out.Write(key)
			out.WriteByte(':')
			if err := n.fields[k].encode(out, fields[k]); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		out.WriteByte('}')
	case '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(given, &elems); err != nil {
			return err
		}
		out.WriteByte('[')
		for i, e := range elems {
			if i > 0 {
				out.WriteByte(',')
			}
			if n.elem == nil {
				if err := reencode(out, e); err != nil {
					return err
				}
				continue
			}
			if err := n.elem.encode(out, e); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		out.WriteByte(']')
	case '"':
		var s string
		if err := json.Unmarshal(given, &s); err != nil {
			return err
		}
		b, _ := json.Marshal(s)
		out.Write(b)
	case '0':
		var num json.Number
		if err := json.Unmarshal(given, &num); err != nil {
			return err
		}
		out.WriteString(num.String())
	case 'b':
		var b bool
		if err := json.Unmarshal(given, &b); err != nil {
			return err
		}
		fmt.Fprint(out, b)
	default:
		return reencode(out, given)
	}
	return nil
}

// zero writes the zero value of the node's Go type as encoding/json writes it: an empty
// struct keeps its keys, a nil slice or pointer is null.
func (n *schemaNode) zero(out *bytes.Buffer) {
	switch n.kind {
	case '{':
		out.WriteByte('{')
		for i, k := range n.keys {
			if i > 0 {
				out.WriteByte(',')
			}
			key, _ := json.Marshal(k)
			out.Write(key)
			out.WriteByte(':')
			n.fields[k].zero(out)
		}
		out.WriteByte('}')
	case '"':
		out.WriteString(`""`)
	case '0':
		out.WriteByte('0')
	case 'b':
		out.WriteString("false")
	default:
		out.WriteString("null")
	}
}

// reencode writes a value of unknown schema compact, with strings re-escaped as
// encoding/json does, in the order given.
func reencode(out *bytes.Buffer, v json.RawMessage) error {
	var compact bytes.Buffer
	if err := json.Compact(&compact, v); err != nil {
		return err
	}
	json.HTMLEscape(out, compact.Bytes())
	return nil
}
